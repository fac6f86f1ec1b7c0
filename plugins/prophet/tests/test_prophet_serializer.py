"""modelshelf-prophet against real Prophet models, through a real filesystem shelf."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.testing.frameworks import assert_light_import, assert_plugins_command_lists
from modelshelf.testing.single_file import one_line
from modelshelf_prophet import ProphetSerializer
from prophet import Prophet


def test_import_and_listing_import_no_framework() -> None:
    assert_light_import(
        "prophet",
        ["prophet-json"],
        ["prophet", "cmdstanpy", "pandas", "numpy"],
        then='entry = get_registry().serializers()["prophet-json"]\n'
        'assert entry.serializer.claims == ("prophet.forecaster.Prophet",)\n',
    )


def test_plugins_command_lists_the_claim() -> None:
    assert_plugins_command_lists("prophet", "prophet-json", "prophet.forecaster.Prophet")


def test_round_trip_identical_forecast_with_regressor(
    local_shelf: Any, fitted: Callable[[str], Any], future: pd.DataFrame
) -> None:
    model = fitted("regressor")
    v = local_shelf.upload("sales", model)
    assert v.serializer.name == "prophet-json" and v.serializer.safe
    assert v.framework.name == "prophet"
    assert [f.path for f in v.files] == ["model.json"]
    assert v.signature == {
        "inputs": [{"name": "future", "kind": "dataframe", "columns": ["ds", "promo"]}],
        "outputs": [{"name": "forecast", "kind": "dataframe", "columns": ["ds", "yhat"]}],
    }
    details = v.serializer.details
    assert details["params"]["growth"] == "linear"
    assert details["params"]["weekly_seasonality"] == "auto"
    assert details["extra_regressors"] == ["promo"]
    assert details["seasonalities"] == ["weekly"]
    assert details["history"] == {
        "start": "2024-01-01T00:00:00",
        "end": "2024-03-30T00:00:00",
        "rows": 90,
    }

    loaded = local_shelf.load("sales:1")
    assert type(loaded) is Prophet
    pd.testing.assert_frame_equal(loaded.predict(future), model.predict(future))


def test_logistic_growth_needs_cap_in_signature(
    local_shelf: Any, fitted: Callable[[str], Any], future: pd.DataFrame
) -> None:
    model = fitted("logistic")
    v = local_shelf.upload("capped", model)
    assert v.signature["inputs"][0]["columns"] == ["ds", "cap"]
    pd.testing.assert_frame_equal(local_shelf.load(v.ref).predict(future), model.predict(future))


def test_uncertainty_interval_identical_under_the_same_seed(
    local_shelf: Any, make_history: Callable[..., pd.DataFrame]
) -> None:
    import numpy as np

    model = Prophet(yearly_seasonality=False, daily_seasonality=False, uncertainty_samples=50)
    model.fit(make_history(60))
    v = local_shelf.upload("interval", model)
    assert v.signature["outputs"][0]["columns"] == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    loaded = local_shelf.load(v.ref)
    future = model.make_future_dataframe(periods=7)
    np.random.seed(3)
    expected = model.predict(future)
    np.random.seed(3)
    pd.testing.assert_frame_equal(loaded.predict(future), expected)


def test_unfitted_model_is_a_clear_error(local_shelf: Any) -> None:
    with pytest.raises(InvalidModel, match="unfitted Prophet: .* fit it") as caught:
        local_shelf.upload("m", Prophet())
    one_line(caught.value)


def test_unknown_options_are_refused(local_shelf: Any, fitted: Callable[[str], Any]) -> None:
    with pytest.raises(ModelshelfError, match="takes no save options"):
        local_shelf.upload("m", fitted("plain"), options={"indent": 2})
    local_shelf.upload("m", fitted("plain"))
    with pytest.raises(ModelshelfError, match="takes no load options"):
        local_shelf.load("m:1", trusted=True)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, fitted: Callable[[str], Any], future: pd.DataFrame, modelshelf_fresh_load: Any
) -> None:
    model = fitted("regressor")
    local_shelf.upload("sales", model)
    fresh = modelshelf_fresh_load(local_shelf.url, "sales:1", future)
    assert (fresh.versions, fresh.files, fresh.type) == ([1], ["model.json"], "Prophet")
    forecast = model.predict(future)
    got = fresh.outputs["predict"][:, list(forecast.columns).index("yhat")].astype(float)
    assert got.tolist() == pytest.approx(forecast["yhat"].tolist(), rel=1e-14)


def test_details_naming_files_outside_the_version_are_refused(
    fitted: Callable[[str], Any], tmp_path: Path
) -> None:
    serializer = ProphetSerializer()
    version = tmp_path / "snapshot" / "version"
    version.mkdir(parents=True)
    saved = serializer.save(fitted("plain"), version)
    outside = tmp_path / "snapshot" / "outside.json"
    outside.write_text("{}")
    for value in ("/etc/passwd", str(outside), "../outside.json", 4, None, "missing.json"):
        with pytest.raises(IntegrityError) as caught:
            serializer.load(version, details={**saved.details, "file": value})
        one_line(caught.value)
    (version / "model.json").rename(outside)
    (version / "model.json").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    one_line(caught.value)


def test_loads_what_modelstore_wrote(
    fitted: Callable[[str], Any], future: pd.DataFrame, tmp_path: Path
) -> None:
    """What the modelstore importer hands over: modelstore 0.0.82's file, as it wrote it."""
    from modelstore.models.prophet import save_model

    model = fitted("regressor")
    written = Path(save_model(str(tmp_path), model))
    assert written.name == "prophet_model.json"
    assert written.read_text().startswith('"')  # modelstore wraps the JSON in a JSON string
    loaded = ProphetSerializer().load(tmp_path, details={"file": "prophet_model.json"})
    pd.testing.assert_frame_equal(loaded.predict(future), model.predict(future))


@pytest.mark.parametrize("how", ["truncated", "not-a-model", "empty", "a-json-number-string"])
def test_damaged_model_file_is_one_invalid_model_line(
    fitted: Callable[[str], Any], tmp_path: Path, how: str
) -> None:
    serializer = ProphetSerializer()
    saved = serializer.save(fitted("plain"), tmp_path)
    path = tmp_path / "model.json"
    stored = path.read_text()
    damaged = {
        "truncated": stored[: len(stored) // 2],
        "not-a-model": json.dumps({"growth": 1}),
        "empty": "",
        "a-json-number-string": '"42"',
    }
    path.write_text(damaged[how])
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'model.json'" in one_line(caught.value) and "prophet" in str(caught.value)


def test_registered_through_entry_point() -> None:
    entry = get_registry().serializers()["prophet-json"]
    assert entry.distribution == "modelshelf-prophet"
