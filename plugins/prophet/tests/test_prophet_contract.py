"""modelshelf's serializer contract for prophet-json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from modelshelf.testing import SerializerContract


class TestProphetContract(SerializerContract):
    serializer = "prophet-json"
    heavy_modules = ("prophet", "cmdstanpy", "pandas")

    @pytest.fixture
    def model(self, fitted: Callable[[str], Any]) -> Any:
        return fitted("regressor")

    @pytest.fixture
    def sample_input(self, future: pd.DataFrame) -> pd.DataFrame:
        return future

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, frame: model.predict(frame)[
            ["yhat", "trend", "weekly", "promo"]
        ].to_numpy()
