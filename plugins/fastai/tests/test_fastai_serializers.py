"""modelshelf-fastai against real tabular learners and a filesystem shelf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# fastai is not a dependency of the plugin: install it with `pip install --no-deps fastai` plus its
# dependencies but torchvision, whose wheel for torch 2.13.0 fails to import beside the CPU build.
pytest.importorskip("fastai.tabular.all", reason="fastai is not installed")
import modelshelf_fastai_testlearners as testlearners  # on sys.path: see conftest.py
import torch
from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf.testing import frameworks
from modelshelf_fastai import FastaiExportSerializer, FastaiSafetensorsSerializer

#: This folder, for the fresh processes that import its helper module by name.
TESTS_DIR = Path(__file__).parent


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    frameworks.assert_light_import(
        "fastai",
        ["fastai-safetensors", "fastai-export"],
        ["fastai", "fastcore", "torch", "torchvision", "safetensors", "pandas", "numpy"],
    )


def test_modelshelf_plugins_lists_the_claims() -> None:
    frameworks.assert_plugins_command_lists(
        "fastai",
        "serializer fastai-safetensors [safetensors, safe]: fastai.learner.Learner",
        "serializer fastai-export [pickle, UNSAFE: needs trust to load]: opt-in",
    )


def test_learner_is_claimed_and_its_model_stays_torch(trained: Any) -> None:
    serializers = [e.serializer for e in get_registry().serializers().values()]
    assert choose(trained, serializers).name == "fastai-safetensors"
    assert choose(trained.model, serializers).name == "torch-safetensors"


def test_upload_records_weights_preprocessing_and_signature(local_shelf: Any) -> None:
    import fastai

    # A learner of its own: the shared one's recorder changes as other tests use it.
    version = local_shelf.upload("tab", testlearners.learner())
    assert version.serializer.name == "fastai-safetensors"
    assert (version.framework.name, version.framework.version) == ("fastai", fastai.__version__)
    assert [f.path for f in version.files] == ["model.safetensors"]
    details = version.serializer.details
    assert details["learner_class"] == "fastai.tabular.learner.TabularLearner"
    assert details["module_class"] == "fastai.tabular.model.TabularModel"
    assert details["loss_func"] == "torch.nn.modules.loss.CrossEntropyLoss"
    assert details["metrics"] == ["fastai.metrics.accuracy"]
    assert details["epochs"] == 2
    tabular = details["tabular"]
    assert tabular["cat_names"] == ["colour", "x2_na"]  # FillMissing adds the gap indicator
    assert tabular["cont_names"] == ["x1", "x2"]
    assert tabular["classes"] == ["no", "yes"]
    assert tabular["procs"]["Categorify"]["classes"]["colour"] == ["#na#", "blue", "green", "red"]
    assert set(tabular["procs"]["Normalize"]["means"]) == {"x1", "x2"}
    assert version.signature == {
        "inputs": [
            {
                "name": "X",
                "shape": [None, 4],
                "feature_names": ["colour", "x2_na", "x1", "x2"],
                "cat_names": ["colour", "x2_na"],
                "cont_names": ["x1", "x2"],
            }
        ],
        "outputs": [{"name": "label", "classes": ["no", "yes"]}],
    }


def test_load_fills_the_learner_the_caller_builds(
    local_shelf: Any, trained: Any, rows: Any
) -> None:
    local_shelf.upload("tab", trained)
    fresh = testlearners.learner(train=False, seed=5)
    assert not np.array_equal(
        testlearners.predict(fresh, rows), testlearners.predict(trained, rows)
    )
    loaded = local_shelf.load("tab:1", learner=fresh)
    assert loaded is fresh
    np.testing.assert_array_equal(
        testlearners.predict(loaded, rows), testlearners.predict(trained, rows)
    )

    with pytest.raises(
        ModelshelfError,
        match=r"pass learner= a fastai.tabular.learner.TabularLearner built with model fastai.tabular.model.TabularModel",
    ):
        local_shelf.load("tab:1")
    with pytest.raises(ModelshelfError, match=r"shape mismatch"):
        local_shelf.load("tab:1", learner=testlearners.learner(train=False, hidden=5))


def test_a_learner_with_other_preprocessing_is_refused(local_shelf: Any, trained: Any) -> None:
    local_shelf.upload("tab", trained)
    other_data = testlearners.frame(seed=3)  # same columns, other rows: other normalisation
    other = testlearners.learner(train=False, data=other_data)
    with pytest.raises(
        ModelshelfError,
        match=r"preprocesses differently \((FillMissing|Normalize).*check_preprocessing=False",
    ) as refused:
        local_shelf.load("tab:1", learner=other)
    assert "\n" not in str(refused.value)
    assert local_shelf.load("tab:1", learner=other, check_preprocessing=False) is other


def test_other_objects_and_unknown_options_are_refused(
    local_shelf: Any, trained: Any, tmp_path: Path
) -> None:
    with pytest.raises(InvalidModel, match=r"fastai-safetensors saves fastai Learners"):
        FastaiSafetensorsSerializer().save(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(
        ModelshelfError, match=r"fastai-safetensors does not understand save option"
    ):
        local_shelf.upload("tab", trained, options={"with_opt": True})


FRESH_PROCESS = """
import json, sys
import modelshelf
from modelshelf_fastai_testlearners import learner, predict, rows_to_score

shelf = modelshelf.open(sys.argv[1])
listed = {n: [v.version for v in shelf.versions(n)] for n in shelf.models()}
files = sorted(p.name for p in shelf.download("team/tab:1", sys.argv[2]).iterdir())
loaded = shelf.load("team/tab:1", learner=learner(train=False, seed=42))
print(json.dumps({"listed": listed, "files": files, "out": predict(loaded, rows_to_score()).tobytes().hex()}))
"""


def test_upload_list_download_and_load_in_a_fresh_process(
    local_shelf: Any,
    trained: Any,
    rows: Any,
    modelshelf_run_python: Any,
) -> None:
    local_shelf.upload("team/tab", trained)
    local_shelf.upload("team/tab", trained)
    report = frameworks.fresh_process_report(
        modelshelf_run_python, FRESH_PROCESS, local_shelf, importable=TESTS_DIR
    )
    assert report["listed"] == {"team/tab": [1, 2]}
    assert report["files"] == ["model.safetensors"]
    assert report["out"] == testlearners.predict(trained, rows).tobytes().hex()


# --- fastai-export -------------------------------------------------------------------------------


def test_export_round_trip_through_the_serializer(trained: Any, rows: Any, tmp_path: Path) -> None:
    serializer = FastaiExportSerializer()
    saved = serializer.save(trained, tmp_path)
    assert saved.details["file"] == "export.pkl"
    assert saved.signature is not None and saved.signature["outputs"][0]["classes"] == ["no", "yes"]
    with pytest.raises(UntrustedFormat, match=r"trust=True"):
        serializer.load(tmp_path, details=saved.details)
    loaded = serializer.load(tmp_path, details=saved.details, trust=True)
    np.testing.assert_array_equal(
        testlearners.predict(loaded, rows), testlearners.predict(trained, rows)
    )


def test_a_hostile_export_never_runs_without_trust(
    local_shelf: Any, trained: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    torch.save(frameworks.WritesMarker(str(marker)), hostile / "export.pkl")
    assert not marker.exists()
    torch.load(hostile / "export.pkl", weights_only=False)  # the payload is real
    assert marker.exists()
    marker.unlink()

    version = local_shelf.upload("evil", trained, serializer="fastai-export")
    assert version.serializer.safe is False
    with pytest.raises(UntrustedFormat):
        local_shelf.load(version.ref)  # core refuses before downloading
    with pytest.raises(UntrustedFormat, match=r"trust=True"):
        FastaiExportSerializer().load(hostile, details=version.serializer.details)
    assert not marker.exists()
    # Trusted, the serializer runs it (a shelf may also flag it in a pickle scan at upload).
    with pytest.raises(ModelshelfError):
        FastaiExportSerializer().load(hostile, details=version.serializer.details, trust=True)
    assert marker.exists()
