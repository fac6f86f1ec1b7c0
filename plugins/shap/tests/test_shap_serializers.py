"""modelshelf-shap against real shap explainers, through a real filesystem shelf."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
from modelshelf.errors import InvalidModel, ModelshelfError, NoSerializer, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.testing import frameworks
from modelshelf.testing.single_file import one_line
from modelshelf_shap import ShapPickleSerializer, TreeExplainerSerializer

MakeModel = Callable[[str], Any]


#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: shap's explainer classes, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS = ("shap.",)


class WritesMarker(frameworks.WritesMarker):
    """A "model" whose unpickling writes the marker file (a stand-in for arbitrary code)."""

    def __call__(self, X: Any) -> Any:
        return np.zeros(len(X))


def test_import_and_listing_import_no_framework() -> None:
    frameworks.assert_light_import(
        "shap", ["shap-tree", "shap-pickle"], ["shap", "numba", "numpy", "xgboost", "sklearn"]
    )


def test_plugins_command_lists_claims_and_why_unsafe() -> None:
    frameworks.assert_plugins_command_lists(
        "shap",
        "shap-tree",
        "shap.explainers._tree.TreeExplainer",
        "shap-pickle",
        "shap.explainers._explainer.Explainer",
        "unsafe by default because",
    )


def test_claims(make_model: MakeModel, X: pd.DataFrame) -> None:
    assert frameworks.chosen_serializer(shap.TreeExplainer(make_model("xgboost"))) == "shap-tree"
    exact = shap.explainers.Exact(make_model("logistic").predict_proba, X.to_numpy()[:10])
    assert frameworks.chosen_serializer(exact) == "shap-pickle"
    kernel = shap.KernelExplainer(make_model("logistic").predict_proba, X.to_numpy()[:5])
    assert frameworks.chosen_serializer(kernel) == "shap-pickle"


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"data": 30, "feature_perturbation": "interventional"},
        {"data": 30, "feature_perturbation": "interventional", "model_output": "probability"},
    ],
    ids=["path-dependent", "interventional", "probability"],
)
def test_tree_explainer_over_xgboost_is_stored_by_the_xgboost_plugin(
    local_shelf: Any,
    make_model: MakeModel,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    settings: dict[str, Any],
) -> None:
    kwargs = {**settings, **({"data": X.iloc[: settings["data"]]} if "data" in settings else {})}
    explainer = shap.TreeExplainer(make_model("xgboost"), **kwargs)
    v = local_shelf.upload("why", explainer)
    assert v.serializer.name == "shap-tree" and v.serializer.safe
    assert v.framework.name == "shap" and v.framework.version == shap.__version__
    paths = sorted(f.path for f in v.files)
    assert "model/model.ubj" in paths and "explainer.json" in paths
    assert ("data.npy" in paths) == ("data" in settings)
    details = v.serializer.details
    assert details["model"]["serializer"] == "xgboost-ubj"
    assert details["model"]["framework"] == "xgboost"
    assert details["model_output"] == settings.get("model_output", "raw")
    assert v.signature["inputs"][0]["shape"] == [None, 4]
    loaded = local_shelf.load(v.ref)
    assert type(loaded) is shap.TreeExplainer
    np.testing.assert_array_equal(loaded.shap_values(rows), explainer.shap_values(rows))
    np.testing.assert_array_equal(
        np.asarray(loaded.expected_value), np.asarray(explainer.expected_value)
    )
    np.testing.assert_array_equal(loaded(rows).values, explainer(rows).values)


def test_tree_explainer_over_a_forest_needs_its_model(
    local_shelf: Any, make_model: MakeModel, X: pd.DataFrame, rows: pd.DataFrame
) -> None:
    """shap keeps no reference to a scikit-learn model: the caller passes it."""
    forest = make_model("forest")
    explainer = shap.TreeExplainer(forest, data=X.iloc[:20])
    with pytest.raises(InvalidModel, match=r"options=\{'model'") as caught:
        local_shelf.upload("why", explainer)
    one_line(caught.value)
    with pytest.raises(InvalidModel, match="expected value"):
        local_shelf.upload("why", explainer, options={"model": make_model("xgboost")})
    v = local_shelf.upload("why", explainer, options={"model": forest})
    assert v.serializer.details["model"]["serializer"] == "sklearn-skops"
    assert v.serializer.details["feature_names"] == ["age", "income", "tenure", "score"]
    # skops does not trust a tree's internal type by default: the explainer needs what its model needs.
    with pytest.raises(UntrustedFormat, match="sklearn.tree"):
        local_shelf.load(v.ref)
    loaded = local_shelf.load(v.ref, trust=True)
    np.testing.assert_array_equal(loaded.shap_values(rows), explainer.shap_values(rows))


def test_unsafe_model_serializer_is_refused_at_save_and_needs_trust_at_load(
    local_shelf: Any, make_model: MakeModel, rows: pd.DataFrame, tmp_path: Path
) -> None:
    explainer = shap.TreeExplainer(make_model("xgboost"))
    with pytest.raises(InvalidModel, match="sklearn-joblib, which needs trust.*shap-pickle"):
        local_shelf.upload("why", explainer, options={"model_serializer": "sklearn-joblib"})
    # A version whose explainer.json names an unsafe serializer (as a hostile writer could) is
    # refused without trust, whatever the manifest says.
    version = tmp_path / "version"
    version.mkdir()
    saved = TreeExplainerSerializer().save(explainer, version)
    record = json.loads((version / "explainer.json").read_text())
    record["model"]["serializer"] = "sklearn-joblib"
    (version / "explainer.json").write_text(json.dumps(record))
    with pytest.raises(UntrustedFormat, match="sklearn-joblib"):
        TreeExplainerSerializer().load(version, details=saved.details)
    record["model"]["serializer"] = "not-installed"
    (version / "explainer.json").write_text(json.dumps(record))
    with pytest.raises(NoSerializer, match="not-installed") as caught:
        TreeExplainerSerializer().load(version, details=saved.details)
    one_line(caught.value)


def test_pickle_explainers_round_trip(
    local_shelf: Any,
    make_model: MakeModel,
    X: pd.DataFrame,
    rows: pd.DataFrame,
) -> None:
    model = make_model("logistic")
    background = X.to_numpy()[:20]
    # Deterministic explainers only: a Permutation or Kernel explainer samples anew on every call.
    for explainer in (
        shap.explainers.Exact(model.decision_function, shap.maskers.Partition(background)),
        shap.explainers.Partition(model.decision_function, shap.maskers.Partition(background)),
    ):
        v = local_shelf.upload("agnostic", explainer)
        assert v.serializer.name == "shap-pickle" and v.serializer.safe is False
        with pytest.raises(UntrustedFormat):
            local_shelf.load(v.ref)
        loaded = frameworks.load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS)
        assert type(loaded) is type(explainer)
        np.testing.assert_array_equal(
            loaded(rows.to_numpy()).values, explainer(rows.to_numpy()).values
        )


def test_tree_explainer_cannot_go_to_shap_pickle(local_shelf: Any, make_model: MakeModel) -> None:
    with pytest.raises(InvalidModel, match="shap-tree") as caught:
        local_shelf.upload(
            "why", shap.TreeExplainer(make_model("xgboost")), serializer="shap-pickle"
        )
    one_line(caught.value)


def test_malicious_pickle_runs_only_with_trust(
    local_shelf: Any, X: pd.DataFrame, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    explainer = shap.explainers.Exact(WritesMarker(str(marker)), X.to_numpy()[:5])
    v = local_shelf.upload("evil", explainer)
    assert not marker.exists()
    directory = local_shelf.download(v.ref, tmp_path / "dl")
    with pytest.raises(UntrustedFormat):
        ShapPickleSerializer().load(directory, details={})
    frameworks.assert_payload_needs_trust(local_shelf, v.ref, marker, tmp_path / "reader-cache")


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any,
    make_model: MakeModel,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    modelshelf_fresh_load: Any,
) -> None:
    explainer = shap.TreeExplainer(
        make_model("xgboost"), data=X.iloc[:30], feature_perturbation="interventional"
    )
    local_shelf.upload("why", explainer)
    fresh = modelshelf_fresh_load(local_shelf.url, "why:1", rows, "shap_values")
    assert fresh.versions == [1]
    assert fresh.files == ["data.npy", "explainer.json", "model/model.ubj"]
    np.testing.assert_array_equal(fresh.outputs["shap_values"], explainer.shap_values(rows))


@pytest.mark.parametrize(
    "damage",
    [
        {"model_output": "os.system"},
        {"model": "xgboost-ubj"},
        {"feature_names": "age"},
        {"feature_perturbation": 3},
    ],
)
def test_damaged_explainer_file_is_one_invalid_model_line(
    make_model: MakeModel, tmp_path: Path, damage: dict[str, Any]
) -> None:
    serializer = TreeExplainerSerializer()
    saved = serializer.save(shap.TreeExplainer(make_model("xgboost")), tmp_path)
    record = json.loads((tmp_path / "explainer.json").read_text())
    (tmp_path / "explainer.json").write_text(json.dumps({**record, **damage}))
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'explainer.json'" in one_line(caught.value)


def test_background_data_is_never_unpickled(
    make_model: MakeModel, X: pd.DataFrame, tmp_path: Path
) -> None:
    serializer = TreeExplainerSerializer()
    explainer = shap.TreeExplainer(
        make_model("xgboost"), data=X.iloc[:10], feature_perturbation="interventional"
    )
    saved = serializer.save(explainer, tmp_path)
    np.save(
        tmp_path / "data.npy",
        np.array([WritesMarker(str(tmp_path / "pwned"))], dtype=object),
        allow_pickle=True,
    )
    with pytest.raises(InvalidModel, match="'data.npy'"):
        serializer.load(tmp_path, details=saved.details)
    assert not (tmp_path / "pwned").exists()


def test_unknown_options_are_refused(local_shelf: Any, make_model: MakeModel) -> None:
    with pytest.raises(ModelshelfError, match="accepted: model, model_serializer"):
        local_shelf.upload("m", shap.TreeExplainer(make_model("xgboost")), options={"modle": 1})


def test_registered_through_entry_point() -> None:
    entries = get_registry().serializers()
    assert entries["shap-tree"].distribution == "modelshelf-shap"
    assert entries["shap-pickle"].serializer.safe is False
