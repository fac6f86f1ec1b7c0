"""modelshelf's serializer contract for annoy-native."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract


def _nearest(index: Any, queries: np.ndarray) -> np.ndarray:
    found = [index.get_nns_by_vector(q.tolist(), 10, include_distances=True) for q in queries]
    return np.array([[ids, distances] for ids, distances in found])


class TestAnnoyContract(SerializerContract):
    serializer = "annoy-native"
    heavy_modules = ("annoy",)

    @pytest.fixture
    def model(self, make_index: Callable[..., Any]) -> Any:
        return make_index("angular")

    @pytest.fixture
    def sample_input(self, queries: np.ndarray) -> np.ndarray:
        return queries

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return _nearest
