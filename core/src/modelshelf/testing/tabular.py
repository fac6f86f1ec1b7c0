"""Shared data for the serializer contracts of tabular frameworks (scikit-learn, XGBoost, LightGBM,
CatBoost, ...): one training set and one sample input, fixed seeds, numpy only.

Mix :class:`TabularContractData` into a :class:`~modelshelf.testing.SerializerContract` subclass
and fit the ``model`` fixture on :func:`training_set`::

    class TestMyClassifierContract(TabularContractData, SerializerContract):
        @pytest.fixture
        def model(self):
            return MyClassifier().fit(*training_set())

``predict`` compares class probabilities (``predict_proba``); override it for models without them.

:class:`WrapperCases` adds the cases of serializers of scikit-learn-style wrappers around a
booster (XGBoost, LightGBM, CatBoost): an unfitted wrapper is refused in one line naming its
class, and details naming another class to rebuild are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf.errors import ModelshelfError
from modelshelf.plugins import get_registry

__all__ = ["TabularContractData", "WrapperCases", "training_set"]


def training_set() -> tuple[Any, Any]:
    """150 rows of 5 float features and a binary target that depends on two of them (seed 1)."""
    import numpy as np

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 5))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


class TabularContractData:
    """``sample_input`` (20 rows of the training set's shape, seed 2) and ``predict_proba``."""

    @pytest.fixture
    def sample_input(self) -> Any:
        import numpy as np

        return np.random.default_rng(2).normal(size=(20, 5))

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, X: model.predict_proba(X)


class WrapperCases:
    """Cases for a serializer of fitted wrappers (use with the serializer contract).

    Override ``unfitted_model`` (a wrapper of the claimed class, never fitted). ``restore_key``
    names the details entry holding the class to rebuild (``None`` skips that case).
    """

    #: The details entry naming the class that ``load`` rebuilds.
    restore_key: str | None = "restore_as"

    @pytest.fixture
    def unfitted_model(self) -> Any:
        raise NotImplementedError("override unfitted_model: a wrapper that was never fitted")

    def test_unfitted_model_is_a_one_line_error(
        self, contract_shelf: modelshelf.Shelf, serializer_name: str, unfitted_model: Any
    ) -> None:
        kind = type(unfitted_model).__name__
        with pytest.raises(ModelshelfError, match=f"unfitted {kind}: fit it") as caught:
            contract_shelf.upload("unfitted", unfitted_model, serializer=serializer_name)
        assert "\n" not in str(caught.value)

    @pytest.mark.parametrize("target", ["os.system", "subprocess.Popen"])
    def test_details_cannot_name_an_arbitrary_class(
        self, serializer_name: str, model: Any, tmp_path: Path, target: str
    ) -> None:
        if self.restore_key is None:
            pytest.skip("this serializer rebuilds no class named in its details")
        serializer = get_registry().serializers()[serializer_name].serializer
        saved = serializer.save(model, tmp_path)
        with pytest.raises(ModelshelfError, match=re.escape(target)):
            serializer.load(tmp_path, details={**saved.details, self.restore_key: target})
