"""modelshelf-statsmodels against real statsmodels fits, through a real filesystem shelf."""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
import pandas as pd
import pytest
import statsmodels
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf_statsmodels import ParamsSerializer, PickleSerializer

MakeResults = Callable[[str], Any]


class WritesMarker:
    """Unpickling this object creates the file ``path`` (a stand-in for arbitrary code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "x"))


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def _load_trusting_the_payload(shelf: Any, ref: str, marker: Path) -> None:
    """Load with trust, as far as the payload runs. Where core scans pickles at upload, the scan
    flags the payload's import of ``builtins.open`` and ``trust=True`` still refuses (nothing runs);
    ``trust="ignore-scan"`` then runs it."""
    try:
        shelf.load(ref, trust=True)
    except UntrustedFormat:
        assert not marker.exists()
        with contextlib.suppress(ModelshelfError):  # what the payload returns is no model
            shelf.load(ref, trust="ignore-scan")
    except ModelshelfError:
        pass  # the payload ran, and what it returned is no model


def _serializers() -> list[Any]:
    return [e.serializer for e in get_registry().serializers().values()]


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_statsmodels\n"
        "from modelshelf.plugins import get_registry\n"
        "assert {'statsmodels-params', 'statsmodels-pickle'} <= set(get_registry().serializers())\n"
        "bad = [m for m in ('statsmodels', 'numpy', 'pandas', 'scipy', 'patsy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "statsmodels"})


def test_plugins_command_lists_claims_and_why_unsafe(run_python: Any) -> None:
    out = run_python(
        "from modelshelf.cli import main; main(['plugins'])",
        env={"MODELSHELF_LOAD_PLUGINS": "statsmodels"},
    ).stdout
    assert "statsmodels-params" in out and "RegressionResultsWrapper" in out
    assert "statsmodels-pickle" in out and "statsmodels.base.wrapper.ResultsWrapper" in out
    assert "unsafe by default because" in out


def test_claims(make_results: MakeResults) -> None:
    for kind in ("ols", "wls", "logit-glm"):
        assert choose(make_results(kind), _serializers()).name == "statsmodels-params"
    assert choose(make_results("arima"), _serializers()).name == "statsmodels-pickle"


@pytest.mark.parametrize(
    "kind", ["ols", "ols-array", "wls", "logit-glm", "poisson-glm", "tweedie-glm"]
)
def test_safe_form_predicts_and_reports_identically(
    shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame, kind: str
) -> None:
    results = make_results(kind)
    v = shelf.upload("fit", results)
    assert v.serializer.name == "statsmodels-params" and v.serializer.safe
    assert v.framework.name == "statsmodels" and v.framework.version == statsmodels.__version__
    assert sorted(f.path for f in v.files) == ["arrays.npz", "spec.json"]
    loaded = shelf.load(v.ref)
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


def test_signature_and_details(shelf: Any, make_results: MakeResults) -> None:
    v = shelf.upload("glm", make_results("logit-glm"))
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
    tweedie = shelf.upload("tw", make_results("tweedie-glm")).serializer.details["spec"]
    assert tweedie["family"] == {"name": "Tweedie", "var_power": 1.5, "eql": False}


def test_what_the_safe_form_cannot_rebuild_points_to_pickle(
    shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame, trusted_load: Callable[..., Any]
) -> None:
    formula = make_results("formula")
    with pytest.raises(InvalidModel, match="formula.*statsmodels-pickle") as caught:
        shelf.upload("f", formula)
    _one_line(caught.value)
    v = shelf.upload("f", formula, serializer="statsmodels-pickle")
    data = new_exog.assign(region=np.where(new_exog["age"] > 0, "north", "south"))
    np.testing.assert_array_equal(trusted_load(shelf, v.ref).predict(data), formula.predict(data))

    import statsmodels.api as sm

    X, y = new_exog, new_exog["age"] * 2
    robust = sm.OLS(y, X).fit(cov_type="HC1")
    with pytest.raises(InvalidModel, match="nonrobust.*HC1"):
        shelf.upload("r", robust)
    with pytest.raises(InvalidModel, match="rebuilds OLS, WLS, GLS, GLM models"):
        shelf.upload("arima", make_results("arima"), serializer="statsmodels-params")


def test_arima_pickle_round_trip(
    shelf: Any, make_results: MakeResults, trusted_load: Callable[..., Any]
) -> None:
    results = make_results("arima")
    v = shelf.upload("arima", results)
    assert v.serializer.name == "statsmodels-pickle" and v.serializer.safe is False
    assert v.serializer.details["model"] == "statsmodels.tsa.arima.model.ARIMA"
    with pytest.raises(UntrustedFormat):
        shelf.load(v.ref)
    loaded = trusted_load(shelf, v.ref)
    pd.testing.assert_series_equal(loaded.forecast(12), results.forecast(12))


def test_pickle_remove_data_option(
    shelf: Any, make_results: MakeResults, new_exog: pd.DataFrame, trusted_load: Callable[..., Any]
) -> None:
    results = make_results("ols")
    expected = results.predict(new_exog)
    full = shelf.upload("ols", results, serializer="statsmodels-pickle")
    slim = shelf.upload(
        "ols", results, serializer="statsmodels-pickle", options={"remove_data": True}
    )
    assert slim.total_size < full.total_size
    pd.testing.assert_series_equal(trusted_load(shelf, slim.ref).predict(new_exog), expected)
    # statsmodels strips the object it saves: the caller's results must be left whole.
    assert len(results.resid) == 120 and results.model.exog.shape == (120, 4)


def test_malicious_pickle_runs_only_with_trust(
    shelf: Any, shelf_path: Path, make_results: MakeResults, tmp_path: Path
) -> None:
    # A version written by a real upload, whose pickle is then replaced by a payload with a
    # matching manifest (what someone able to write the shelf could publish).
    directory = tmp_path / "evil-version"
    directory.mkdir()
    marker = tmp_path / "pwned"
    (directory / "results.pickle").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    shelf.upload("evil", [directory / "results.pickle"])  # stored as plain files first...
    with pytest.raises(UntrustedFormat):
        PickleSerializer().load(directory, details={})
    assert not marker.exists()

    # ...and through the serializer, as a version that needs trust:
    class Evil:
        model = object()

        def save(self, fname: str, remove_data: bool = False) -> None:
            Path(fname).write_bytes(pickle.dumps(WritesMarker(str(marker))))

    v = shelf.upload("evil", Evil(), serializer="statsmodels-pickle")
    reader = modelshelf.open(str(shelf_path), cache=tmp_path / "reader-cache")
    with pytest.raises(UntrustedFormat, match="trust=True"):
        reader.load(v.ref)
    assert not marker.exists()
    # The payload is live: trusting it runs it. This is what makes the assertions above meaningful.
    _load_trusting_the_payload(shelf, v.ref, marker)
    assert marker.exists()


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any,
    shelf_path: Path,
    make_results: MakeResults,
    new_exog: pd.DataFrame,
    run_python: Any,
    tmp_path: Path,
) -> None:
    results = make_results("logit-glm")
    shelf.upload("glm", results)
    new_exog.to_json(tmp_path / "X.json", orient="split", double_precision=15)
    code = (
        "import sys, json, pandas as pd, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('glm')] == [1]\n"
        "dest = shelf.download('glm:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['arrays.npz', 'spec.json']\n"
        "results = shelf.load('glm:1')\n"
        "X = pd.read_json(sys.argv[4], orient='split', precise_float=True)\n"
        "open(sys.argv[3], 'w').write(json.dumps({'X': X.to_numpy().tolist(), 'p': results.predict(X).tolist()}))\n"
    )
    out = tmp_path / "out.json"
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "X.json"))
    got = json.loads(out.read_text())
    X = pd.DataFrame(got["X"], columns=new_exog.columns)
    assert got["p"] == results.predict(X).tolist()


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
    assert "'spec.json'" in _one_line(caught.value)


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
    (version / "spec.json").rename(tmp_path / "outside.json")
    (version / "spec.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)


def test_unknown_options_are_refused(shelf: Any, make_results: MakeResults) -> None:
    with pytest.raises(ModelshelfError, match="remove_data"):
        shelf.upload("m", make_results("ols"), options={"remove_data": True})
    with pytest.raises(ModelshelfError, match="accepted: remove_data"):
        shelf.upload("m", make_results("arima"), options={"compress": 3})


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
