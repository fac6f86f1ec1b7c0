"""modelshelf-skorch against real skorch nets and a filesystem shelf."""

from __future__ import annotations

import pickle
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf_skorch_testnets as testnets  # on sys.path: see conftest.py
import numpy as np
import pytest
from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.testing import frameworks
from modelshelf.testing.frameworks import chosen_serializer
from modelshelf_skorch import SkorchPickleSerializer, SkorchSafetensorsSerializer

#: This folder, for the fresh processes that import its helper module by name.
TESTS_DIR = Path(__file__).parent


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    frameworks.assert_light_import(
        "skorch",
        ["skorch-safetensors", "skorch-pickle"],
        ["skorch", "torch", "safetensors", "sklearn", "numpy"],
    )


def test_modelshelf_plugins_lists_the_claims() -> None:
    frameworks.assert_plugins_command_lists(
        "skorch",
        "serializer skorch-safetensors [safetensors, safe]: skorch.net.NeuralNet",
        "serializer skorch-pickle [pickle, UNSAFE: needs trust to load]: opt-in",
    )


def test_nets_are_claimed_before_scikit_learn(trained: Any) -> None:
    from skorch import NeuralNetRegressor

    # A skorch net is also a sklearn BaseEstimator: skorch's claim is more specific.
    assert chosen_serializer(trained) == "skorch-safetensors"
    assert chosen_serializer(NeuralNetRegressor(module=None)) == "skorch-safetensors"


def test_upload_records_parts_params_history_and_classes(local_shelf: Any, trained: Any) -> None:
    import skorch

    version = local_shelf.upload("clf", trained)
    assert version.serializer.name == "skorch-safetensors"
    assert (version.framework.name, version.framework.version) == ("skorch", skorch.__version__)
    assert sorted(f.path for f in version.files) == ["history.json", "module_/model.safetensors"]
    details = version.serializer.details
    assert details["net_class"] == "skorch.classifier.NeuralNetClassifier"
    assert details["module_class"] == "modelshelf_skorch_testnets.Classifier"
    assert [p["attribute"] for p in details["parts"]] == ["module_"]
    assert details["epochs"] == 5
    assert details["classes"] == [0, 1, 2]
    params = details["params"]
    assert params["lr"] == 0.1 and params["max_epochs"] == 5 and params["module__hidden"] == 8
    assert params["module"] == "modelshelf_skorch_testnets.Classifier"
    assert params["optimizer"] == "torch.optim.sgd.SGD"
    assert version.signature == {"inputs": [], "outputs": [{"name": "y", "classes": [0, 1, 2]}]}


def test_load_fills_the_net_the_caller_builds(
    local_shelf: Any, trained: Any, x: np.ndarray
) -> None:
    local_shelf.upload("clf", trained)
    net = testnets.unfitted()
    loaded = local_shelf.load("clf:1", net=net)
    assert loaded is net and loaded.initialized_
    np.testing.assert_array_equal(loaded.predict_proba(x), trained.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), trained.predict(x))
    assert list(loaded.classes_) == [0, 1, 2]
    assert len(loaded.history) == 5
    assert loaded.history[-1]["train_loss"] == trained.history[-1]["train_loss"]
    # An already initialised net is filled in place too.
    ready = testnets.unfitted().initialize()
    np.testing.assert_array_equal(
        local_shelf.load("clf:1", net=ready).predict_proba(x), trained.predict_proba(x)
    )

    with pytest.raises(
        ModelshelfError,
        match=r"pass net= a skorch.classifier.NeuralNetClassifier built with module modelshelf_skorch_testnets.Classifier",
    ):
        local_shelf.load("clf:1")
    with pytest.raises(ModelshelfError, match=r"shape mismatch for layers.0.weight"):
        local_shelf.load("clf:1", net=testnets.unfitted(hidden=3))
    with pytest.raises(ModelshelfError, match=r"net= must be a skorch net"):
        local_shelf.load("clf:1", net=object())


def test_a_criterion_with_state_is_stored_too(local_shelf: Any, x: np.ndarray) -> None:
    trained = testnets.fitted(criterion=testnets.WeightedLoss)
    version = local_shelf.upload("weighted", trained)
    assert [p["attribute"] for p in version.serializer.details["parts"]] == [
        "module_",
        "criterion_",
    ]
    net = testnets.unfitted(criterion=testnets.WeightedLoss)
    net.initialize()
    net.criterion_.weights.fill_(0.0)
    loaded = local_shelf.load(version.ref, net=net)
    assert loaded.criterion_.weights.tolist() == [1.0, 2.0, 0.5]
    np.testing.assert_array_equal(loaded.predict_proba(x), trained.predict_proba(x))


def test_unfitted_nets_and_other_objects_are_refused(local_shelf: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match=r"not initialised.*net.initialize\(\)"):
        local_shelf.upload("raw", testnets.unfitted())
    with pytest.raises(InvalidModel, match=r"skorch-safetensors saves skorch nets"):
        SkorchSafetensorsSerializer().save(object(), tmp_path)
    with pytest.raises(
        ModelshelfError, match=r"skorch-safetensors does not understand save option"
    ):
        local_shelf.upload("clf", testnets.fitted(), options={"f_params": "x"})


FRESH_PROCESS = """
import json, sys
import numpy as np, modelshelf
from modelshelf_skorch_testnets import unfitted

shelf = modelshelf.open(sys.argv[1])
listed = {n: [v.version for v in shelf.versions(n)] for n in shelf.models()}
files = sorted(str(p.relative_to(sys.argv[2])) for p in shelf.download("team/clf:1", sys.argv[2]).rglob("*") if p.is_file())
x = np.array(json.loads(sys.argv[3]), dtype="float32")
net = shelf.load("team/clf:1", net=unfitted())
print(json.dumps({"listed": listed, "files": files, "type": type(net).__name__,
                  "net": net.predict_proba(x).tobytes().hex()}))
"""


def test_upload_list_download_and_load_in_a_fresh_process(
    local_shelf: Any,
    trained: Any,
    x: np.ndarray,
    modelshelf_run_python: Any,
) -> None:
    local_shelf.upload("team/clf", trained)
    local_shelf.upload("team/other", trained)
    report = frameworks.fresh_process_report(
        modelshelf_run_python, FRESH_PROCESS, local_shelf, x.tolist(), importable=TESTS_DIR
    )
    assert report["listed"] == {"team/clf": [1], "team/other": [1]}
    assert report["files"] == ["history.json", "module_/model.safetensors"]
    assert report["type"] == "NeuralNetClassifier"
    expected = trained.predict_proba(x).tobytes().hex()
    assert report["net"] == expected


# --- skorch-pickle -------------------------------------------------------------------------------


def test_a_hostile_pickle_never_runs_without_trust(local_shelf: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(frameworks.WritesMarker(str(marker)))
    pickle.loads(payload)  # the payload is real: unpickling it writes the marker
    assert marker.exists()
    marker.unlink()

    version = local_shelf.upload(
        "evil", frameworks.WritesMarker(str(marker)), serializer="skorch-pickle"
    )
    assert version.serializer.safe is False
    assert not marker.exists()
    with pytest.raises(UntrustedFormat):
        local_shelf.load(version.ref)  # core refuses before downloading
    assert not marker.exists()
    directory = local_shelf.download(version.ref, tmp_path / "dl")
    # Trusted, the serializer runs it (a shelf may also flag it in a pickle scan at upload).
    frameworks.assert_load_needs_trust(
        SkorchPickleSerializer(), directory, version.serializer.details, marker
    )


def test_pickle_of_an_unimportable_class_says_so(
    local_shelf: Any,
    local_shelf_path: Path,
    trained: Any,
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    version = local_shelf.upload("clf", trained, serializer="skorch-pickle")
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from modelshelf.errors import ModelshelfError
        from modelshelf_skorch import SkorchPickleSerializer
        import modelshelf
        shelf = modelshelf.open(sys.argv[1])
        directory = shelf.download(sys.argv[2], sys.argv[3])
        try:
            SkorchPickleSerializer().load(directory, details={"file": "net.pkl", "net_class": "N"}, trust=True)
        except ModelshelfError as exc:
            print(exc)
        """
    )
    result = modelshelf_run_python(
        code, str(local_shelf_path), version.ref, str(local_shelf_path.parent / "dl")
    )  # no tests dir on the path
    assert "must be importable" in result.stdout and "modelshelf_skorch_testnets" in result.stdout
