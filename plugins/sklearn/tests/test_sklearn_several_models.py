"""Several scikit-learn models in one version: a scaler and a classifier, one of them pickled."""

from __future__ import annotations

from pathlib import Path

import modelshelf
import numpy as np
import pytest
from modelshelf.errors import UntrustedFormat
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def test_encoder_and_model_round_trip_and_an_unsafe_entry_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression().fit(scaler.transform(x), y)
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    safe = shelf.upload("churn", {"encoder": scaler, "model": model})
    assert safe.serializer.safe
    loaded = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "fresh").load(safe.ref)
    assert set(loaded) == {"encoder", "model"}
    np.testing.assert_array_equal(
        loaded["model"].predict(loaded["encoder"].transform(x)), model.predict(scaler.transform(x))
    )

    mixed = shelf.upload(
        "churn",
        {"encoder": scaler, "model": model},
        options={"serializers": {"model": "sklearn-joblib"}},
    )
    entries = mixed.serializer.details["entries"]
    assert (
        entries["encoder"]["serializer"] == "sklearn-skops"
        and entries["model"]["serializer"] == "sklearn-joblib"
    )
    assert not mixed.serializer.safe
    with pytest.raises(UntrustedFormat, match="'model' as joblib") as refused:
        shelf.load(mixed.ref)
    assert "'encoder'" not in str(refused.value)
    trusted = shelf.load(mixed.ref, trust=True)
    np.testing.assert_array_equal(
        trusted["model"].predict(trusted["encoder"].transform(x)),
        model.predict(scaler.transform(x)),
    )
