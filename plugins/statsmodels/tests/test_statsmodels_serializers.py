"""modelshelf-statsmodels against real statsmodels fits, through a real filesystem shelf."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.testing import frameworks
from modelshelf.testing.frameworks import WritesMarker
from modelshelf.testing.single_file import one_line
from modelshelf_statsmodels import ParamsSerializer, PickleSerializer

MakeResults = Callable[[str], Any]


#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: pandas' top-level classes (DataFrame, Index...), the pyarrow buffers of pandas' string columns
#: nor types.SimpleNamespace, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS = ("pandas.", "pyarrow.lib.", "types.SimpleNamespace")


def test_import_and_listing_import_no_framework() -> None:
    frameworks.assert_light_import(
        "statsmodels",
        ["statsmodels-params", "statsmodels-pickle"],
        ["statsmodels", "numpy", "pandas", "scipy", "patsy"],
    )


def test_plugins_command_lists_claims_and_why_unsafe() -> None:
    frameworks.assert_plugins_command_lists(
        "statsmodels",
        "statsmodels-params",
        "RegressionResultsWrapper",
        "statsmodels-pickle",
        "statsmodels.base.wrapper.ResultsWrapper",
        "unsafe by default because",
    )


def test_claims(make_results: MakeResults) -> None:
    for kind in ("ols", "wls", "logit-glm"):
        assert frameworks.chosen_serializer(make_results(kind)) == "statsmodels-params"
    assert frameworks.chosen_serializer(make_results("arima")) == "statsmodels-pickle"


@pytest.mark.parametrize(
    "kind", ["ols", "ols-array", "wls", "logit-glm", "poisson-glm", "tweedie-glm"]
)
def test_safe_form_predicts_and_reports_identically(
    local_shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame, kind: str
) -> None:
    results = make_results(kind)
    v = local_shelf.upload("fit", results)
    assert v.serializer.name == "statsmodels-params" and v.serializer.safe
    assert v.framework.name == "statsmodels" and v.framework.version == statsmodels.__version__
    assert sorted(f.path for f in v.files) == ["arrays.npz", "spec.json"]
    loaded = local_shelf.load(v.ref)
    assert type(loaded) is type(results)
    X = new_exog if kind != "ols-array" else new_exog.to_numpy()
    expected, got = results.predict(X), loaded.predict(X)
    assert type(got) is type(expected)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    for attribute in (
        "params",
        "bse",
        "tvalues",
        "pvalues",
        "llf",
        "aic",
        "nobs",
        "df_resid",
        "df_model",
    ):
        np.testing.assert_array_equal(
            np.asarray(getattr(loaded, attribute)),
            np.asarray(getattr(results, attribute)),
            err_msg=attribute,
        )
    np.testing.assert_array_equal(np.asarray(loaded.conf_int()), np.asarray(results.conf_int()))
    np.testing.assert_array_equal(np.asarray(loaded.cov_params()), np.asarray(results.cov_params()))
    if "glm" not in kind:
        assert loaded.rsquared == results.rsquared
    # What the safe form does not keep is empty, never numbers from the placeholder design.
    resid = "resid_response" if "glm" in kind else "resid"
    assert len(getattr(loaded._results, resid)) == 0 and len(loaded._results.fittedvalues) == 0


def test_signature_and_details(local_shelf: Any, make_results: MakeResults) -> None:
    v = local_shelf.upload("glm", make_results("logit-glm"))
    assert v.signature == {
        "inputs": [
            {
                "name": "exog",
                "dtype": "float64",
                "shape": [None, 4],
                "feature_names": ["const", "age", "income", "tenure"],
            }
        ],
        "outputs": [{"name": "churn", "dtype": "float64", "shape": [None], "kind": "glm"}],
    }
    spec = v.serializer.details["spec"]
    assert spec["family"] == {"name": "Binomial"} and spec["link"] == {"name": "Logit"}
    assert set(v.serializer.details["params"]) == {"const", "age", "income", "tenure"}
    tweedie = local_shelf.upload("tw", make_results("tweedie-glm")).serializer.details["spec"]
    assert tweedie["family"] == {"name": "Tweedie", "var_power": 1.5, "eql": False}


def test_what_the_safe_form_cannot_rebuild_points_to_pickle(
    local_shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame
) -> None:
    formula = make_results("formula")
    with pytest.raises(InvalidModel, match="formula.*statsmodels-pickle") as caught:
        local_shelf.upload("f", formula)
    one_line(caught.value)
    v = local_shelf.upload("f", formula, serializer="statsmodels-pickle")
    data = new_exog.assign(region=np.where(new_exog["age"] > 0, "north", "south"))
    np.testing.assert_array_equal(
        frameworks.load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS).predict(data),
        formula.predict(data),
    )

    import statsmodels.api as sm

    X, y = new_exog, new_exog["age"] * 2
    robust = sm.OLS(y, X).fit(cov_type="HC1")
    with pytest.raises(InvalidModel, match="nonrobust.*HC1"):
        local_shelf.upload("r", robust)
    with pytest.raises(InvalidModel, match="rebuilds OLS, WLS, GLS, GLM models"):
        local_shelf.upload("arima", make_results("arima"), serializer="statsmodels-params")


def test_arima_pickle_round_trip(local_shelf: Any, make_results: MakeResults) -> None:
    results = make_results("arima")
    v = local_shelf.upload("arima", results)
    assert v.serializer.name == "statsmodels-pickle" and v.serializer.safe is False
    assert v.serializer.details["model"] == "statsmodels.tsa.arima.model.ARIMA"
    with pytest.raises(UntrustedFormat):
        local_shelf.load(v.ref)
    loaded = frameworks.load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS)
    pd.testing.assert_series_equal(loaded.forecast(12), results.forecast(12))


def test_pickle_remove_data_option(
    local_shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame
) -> None:
    results = make_results("ols")
    expected = results.predict(new_exog)
    full = local_shelf.upload("ols", results, serializer="statsmodels-pickle")
    slim = local_shelf.upload(
        "ols", results, serializer="statsmodels-pickle", options={"remove_data": True}
    )
    assert slim.total_size < full.total_size
    pd.testing.assert_series_equal(
        frameworks.load_trusted(local_shelf, slim.ref, FRAMEWORK_IMPORTS).predict(new_exog),
        expected,
    )
    # statsmodels strips the object it saves: the caller's results must be left whole.
    assert len(results.resid) == 120 and results.model.exog.shape == (120, 4)


def test_malicious_pickle_runs_only_with_trust(
    local_shelf: Any, make_results: MakeResults, tmp_path: Path
) -> None:
    # A version written by a real upload, whose pickle is then replaced by a payload with a
    # matching manifest (what someone able to write the shelf could publish).
    directory = tmp_path / "evil-version"
    directory.mkdir()
    marker = tmp_path / "pwned"
    (directory / "results.pickle").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    local_shelf.upload("evil", [directory / "results.pickle"])  # stored as plain files first...
    with pytest.raises(UntrustedFormat):
        PickleSerializer().load(directory, details={})
    assert not marker.exists()

    # ...and through the serializer, as a version that needs trust:
    class Evil:
        model = object()

        def save(self, fname: str, remove_data: bool = False) -> None:
            Path(fname).write_bytes(pickle.dumps(WritesMarker(str(marker))))

    v = local_shelf.upload("evil", Evil(), serializer="statsmodels-pickle")
    frameworks.assert_payload_needs_trust(local_shelf, v.ref, marker, tmp_path / "reader-cache")


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame, modelshelf_fresh_load: Any
) -> None:
    results = make_results("logit-glm")
    local_shelf.upload("glm", results)
    fresh = modelshelf_fresh_load(local_shelf.url, "glm:1", new_exog)
    assert (fresh.versions, fresh.files) == ([1], ["arrays.npz", "spec.json"])
    np.testing.assert_array_equal(fresh.outputs["predict"], results.predict(new_exog))


def test_spec_comes_from_the_files_not_details(
    make_results: MakeResults, new_exog: pd.DataFrame, tmp_path: Path
) -> None:
    serializer = ParamsSerializer()
    results = make_results("ols")
    saved = serializer.save(results, tmp_path)
    hostile = {"spec": {"model": "os.system"}, "file": "/etc/passwd"}
    loaded = serializer.load(tmp_path, details=hostile)
    np.testing.assert_array_equal(loaded.predict(new_exog), results.predict(new_exog))
    assert saved.details["spec"]["model"] == "OLS"


@pytest.mark.parametrize(
    "damage",
    [
        {"model": "os.system"},
        {"exog_names": "const"},
        {"model": "GLM", "family": {"name": "Evil"}, "link": {"name": "Logit"}},
        {"model": "GLM", "family": {"name": "Tweedie", "code": "x"}, "link": {"name": "Log"}},
        {"scale": "1"},
    ],
)
def test_damaged_spec_is_one_invalid_model_line(
    make_results: MakeResults, tmp_path: Path, damage: dict[str, Any]
) -> None:
    serializer = ParamsSerializer()
    saved = serializer.save(make_results("ols"), tmp_path)
    spec = json.loads((tmp_path / "spec.json").read_text())
    (tmp_path / "spec.json").write_text(json.dumps({**spec, **damage}))
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'spec.json'" in one_line(caught.value)


def test_arrays_of_the_wrong_shape_are_refused(make_results: MakeResults, tmp_path: Path) -> None:
    serializer = ParamsSerializer()
    saved = serializer.save(make_results("ols"), tmp_path)
    with (tmp_path / "arrays.npz").open("wb") as out:
        np.savez(out, params=np.zeros(3), normalized_cov_params=np.zeros((3, 3)))
    with pytest.raises(InvalidModel, match="'arrays.npz'"):
        serializer.load(tmp_path, details=saved.details)
    # An object array would need pickle to load: refused, never unpickled.
    with (tmp_path / "arrays.npz").open("wb") as out:
        np.savez(
            out,
            params=np.array([WritesMarker(str(tmp_path / "pwned"))], dtype=object),
            normalized_cov_params=np.zeros((4, 4)),
        )
    with pytest.raises(InvalidModel, match="'arrays.npz'"):
        serializer.load(tmp_path, details=saved.details)
    assert not (tmp_path / "pwned").exists()


def test_symlinked_file_is_refused(make_results: MakeResults, tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.mkdir()
    serializer = ParamsSerializer()
    saved = serializer.save(make_results("ols"), version)
    frameworks.assert_planted_link_refused(serializer, version, saved.details, "spec.json")


def test_unknown_options_are_refused(local_shelf: Any, make_results: MakeResults) -> None:
    with pytest.raises(ModelshelfError, match="remove_data"):
        local_shelf.upload("m", make_results("ols"), options={"remove_data": True})
    with pytest.raises(ModelshelfError, match="accepted: remove_data"):
        local_shelf.upload("m", make_results("arima"), options={"compress": 3})


def test_pickle_loads_what_modelstore_wrote(
    make_results: MakeResults, new_exog: pd.DataFrame, tmp_path: Path
) -> None:
    """What the modelstore importer hands over: modelstore 0.0.82's model.pkl (results.save)."""
    from modelstore.models.statsmodels import MODEL_PICKLE, _save_model

    results = make_results("ols")
    _save_model(str(tmp_path), results, MODEL_PICKLE)
    loaded = PickleSerializer().load(tmp_path, details={"file": MODEL_PICKLE}, trust=True)
    pd.testing.assert_series_equal(loaded.predict(new_exog), results.predict(new_exog))
    for value in ("/etc/passwd", "../model.pkl", 7):
        with pytest.raises(IntegrityError):
            PickleSerializer().load(tmp_path, details={"file": value}, trust=True)


def test_registered_through_entry_point() -> None:
    entries = get_registry().serializers()
    assert entries["statsmodels-params"].distribution == "modelshelf-statsmodels"
    assert entries["statsmodels-pickle"].serializer.safe is False
