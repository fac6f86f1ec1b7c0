"""modelshelf's serializer contract for catboost-cbm."""

from __future__ import annotations

from typing import Any

import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases
from modelshelf.testing.tabular import TabularContractData, WrapperCases, training_set


class TestCatBoostClassifierContract(
    TabularContractData, SingleFileCases, WrapperCases, SerializerContract
):
    model_file = "model.cbm"

    @pytest.fixture
    def unfitted_model(self) -> Any:
        import catboost as cb

        return cb.CatBoostClassifier()

    serializer = "catboost-cbm"

    @pytest.fixture
    def model(self) -> Any:
        import catboost as cb

        return cb.CatBoostClassifier(
            iterations=10, verbose=0, allow_writing_files=False, thread_count=1, random_seed=0
        ).fit(*training_set())

    heavy_modules = ("catboost", "numpy", "pandas")
