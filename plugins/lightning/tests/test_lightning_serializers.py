"""modelshelf-lightning against real Lightning modules (both packages) and a filesystem shelf."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf_lightning_testmodules as testmodules  # on sys.path: see conftest.py
import numpy as np
import pytest
import torch
from modelshelf.errors import ModelshelfError, UntrustedFormat
from modelshelf.testing import frameworks
from modelshelf.testing.frameworks import chosen_serializer
from modelshelf_lightning import LightningCheckpointSerializer, LightningSafetensorsSerializer

#: This folder, for the fresh processes that import its helper module by name.
TESTS_DIR = Path(__file__).parent


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    frameworks.assert_light_import(
        "lightning",
        ["lightning-safetensors", "lightning-checkpoint"],
        ["lightning", "pytorch_lightning", "lightning_fabric", "torch", "safetensors", "numpy"],
    )


def test_modelshelf_plugins_lists_both_claims() -> None:
    frameworks.assert_plugins_command_lists(
        "lightning",
        "serializer lightning-safetensors [safetensors+json, safe]: "
        "lightning.pytorch.core.module.LightningModule, pytorch_lightning.core.module.LightningModule",
        "serializer lightning-checkpoint [lightning-ckpt, UNSAFE: needs trust to load]: opt-in",
    )


def test_both_packages_are_claimed_before_torch() -> None:
    import lightning.pytorch
    import pytorch_lightning

    assert chosen_serializer(testmodules.TinyRegressor()) == "lightning-safetensors"
    assert chosen_serializer(testmodules.ClassicRegressor()) == "lightning-safetensors"
    assert chosen_serializer(lightning.pytorch.LightningModule()) == "lightning-safetensors"
    assert chosen_serializer(pytorch_lightning.LightningModule()) == "lightning-safetensors"
    assert (
        chosen_serializer(torch.nn.Linear(2, 2)) == "torch-safetensors"
    )  # plain modules stay torch's


def test_upload_records_hyperparameters_weights_and_signature(
    local_shelf: Any, trained: Any, tmp_path: Path
) -> None:
    import lightning

    version = local_shelf.upload("reg", trained)
    assert version.serializer.name == "lightning-safetensors"
    assert (version.framework.name, version.framework.version) == (
        "lightning",
        lightning.__version__,
    )
    assert sorted(f.path for f in version.files) == ["hparams.json", "model.safetensors"]
    details = version.serializer.details
    assert details["module_class"] == "modelshelf_lightning_testmodules.TinyRegressor"
    assert details["lightning_package"] == "lightning"
    assert details["hparams_name"] == "kwargs"
    assert details["skipped_hparams"] == []
    assert details["torch_version"] == torch.__version__
    assert [t["name"] for t in details["tensors"]] == [
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
    ]
    assert version.signature == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 4]}],
        "outputs": [],
    }
    stored = json.loads(
        (local_shelf.download("reg:1", tmp_path / "dl") / "hparams.json").read_text()
    )
    assert stored == {"n_in": 4, "hidden": 6, "lr": 0.1, "activation": "tanh"}


def test_load_builds_the_named_class_or_fills_an_instance(
    local_shelf: Any,
    trained: Any,
    x: torch.Tensor,
    run: Callable[[Any, Any], Any],
) -> None:
    local_shelf.upload("reg", trained)
    built = local_shelf.load("reg:1", cls=testmodules.TinyRegressor)
    assert type(built) is testmodules.TinyRegressor
    assert built.hparams.hidden == 6 and built.hparams.lr == 0.1  # from hparams.json, not defaults
    np.testing.assert_array_equal(run(built, x), run(trained, x))

    mine = testmodules.TinyRegressor(hidden=6)
    assert local_shelf.load("reg:1", module=mine) is mine
    np.testing.assert_array_equal(run(mine, x), run(trained, x))

    with pytest.raises(ModelshelfError, match=r"pass cls=YourModule .*TinyRegressor") as refused:
        local_shelf.load("reg:1")
    assert "\n" not in str(refused.value)
    with pytest.raises(ModelshelfError, match=r"shape mismatch"):
        local_shelf.load("reg:1", module=testmodules.TinyRegressor(hidden=9))
    with pytest.raises(ModelshelfError, match=r"cls= must be a LightningModule subclass"):
        local_shelf.load("reg:1", cls=torch.nn.Linear)


def test_pytorch_lightning_modules_round_trip(
    local_shelf: Any, x: torch.Tensor, run: Callable[[Any, Any], Any]
) -> None:
    import pytorch_lightning

    torch.manual_seed(3)
    model = testmodules.ClassicRegressor(hidden=7)
    version = local_shelf.upload("classic", model)
    assert version.serializer.details["lightning_package"] == "pytorch_lightning"
    assert version.framework.version == pytorch_lightning.__version__
    loaded = local_shelf.load(version.ref, cls=testmodules.ClassicRegressor)
    np.testing.assert_array_equal(run(loaded, x), run(model, x))


def test_hyperparameters_given_as_one_dict_and_layers_built_in_configure_model(
    local_shelf: Any, run: Callable[[Any, Any], Any]
) -> None:
    torch.manual_seed(4)
    from_dict = testmodules.FromDict({"n_in": 4, "n_out": 3})
    version = local_shelf.upload("dict", from_dict)
    assert version.serializer.details["hparams_name"] == "config"
    inputs = torch.ones(2, 4)
    loaded = local_shelf.load(version.ref, cls=testmodules.FromDict)
    np.testing.assert_array_equal(run(loaded, inputs), run(from_dict, inputs))

    later = testmodules.ConfiguredLater(width=5)
    later.configure_model()
    version = local_shelf.upload("later", later)
    loaded = local_shelf.load(version.ref, cls=testmodules.ConfiguredLater)
    np.testing.assert_array_equal(run(loaded, torch.ones(1, 5)), run(later, torch.ones(1, 5)))


def test_hyperparameters_json_cannot_hold_are_named(local_shelf: Any, run: Any) -> None:
    model = testmodules.WithModuleArgument(torch.nn.Linear(4, 2), scale=3.0)
    version = local_shelf.upload("backbone", model)
    assert version.serializer.details["skipped_hparams"] == ["backbone"]
    with pytest.raises(
        ModelshelfError, match=r"hyperparameters backbone were not JSON.*module=instance"
    ):
        local_shelf.load(version.ref, cls=testmodules.WithModuleArgument)
    mine = testmodules.WithModuleArgument(torch.nn.Linear(4, 2), scale=3.0)
    loaded = local_shelf.load(version.ref, module=mine)
    np.testing.assert_array_equal(run(loaded, torch.ones(1, 4)), run(model, torch.ones(1, 4)))


def test_non_lightning_objects_and_unknown_options_are_refused(
    local_shelf: Any, trained: Any, tmp_path: Path
) -> None:
    with pytest.raises(
        ModelshelfError, match=r"not Linear: for a plain torch.nn.Module use torch-safetensors"
    ):
        LightningSafetensorsSerializer().save(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(
        ModelshelfError, match=r"lightning-safetensors does not understand save option"
    ):
        local_shelf.upload("reg", trained, options={"dtype": "half"})


FRESH_PROCESS = """
import json, sys
import torch, modelshelf
from modelshelf_lightning_testmodules import TinyRegressor

shelf = modelshelf.open(sys.argv[1])
listed = {n: [v.version for v in shelf.versions(n)] for n in shelf.models()}
files = sorted(p.name for p in shelf.download("team/reg:1", sys.argv[2]).iterdir())
x = torch.tensor(json.loads(sys.argv[3]))
weights = shelf.load("team/reg:1", cls=TinyRegressor).eval()
full = shelf.load("team/reg-ckpt:1", cls=TinyRegressor, trust=True).eval()
with torch.no_grad():
    out = {"weights": weights(x).numpy().tobytes().hex(), "checkpoint": full(x).numpy().tobytes().hex()}
print(json.dumps({"listed": listed, "files": files, "out": out, "hidden": weights.hparams.hidden}))
"""


def test_upload_list_download_and_load_in_a_fresh_process(
    local_shelf: Any,
    trained: Any,
    x: torch.Tensor,
    run: Callable[[Any, Any], Any],
    modelshelf_run_python: Any,
) -> None:
    local_shelf.upload("team/reg", trained)
    checkpoint = local_shelf.upload("team/reg-ckpt", trained, serializer="lightning-checkpoint")
    assert checkpoint.serializer.details["written_by"] == "trainer.save_checkpoint"
    report = frameworks.fresh_process_report(
        modelshelf_run_python, FRESH_PROCESS, local_shelf, x.tolist(), importable=TESTS_DIR
    )
    assert report["listed"] == {"team/reg": [1], "team/reg-ckpt": [1]}
    assert report["files"] == ["hparams.json", "model.safetensors"]
    assert report["hidden"] == 6
    expected = run(trained, x).tobytes().hex()
    assert report["out"] == {"weights": expected, "checkpoint": expected}


# --- lightning-checkpoint ----------------------------------------------------------------------


def test_checkpoint_without_a_trainer_and_without_a_class(
    local_shelf: Any, x: torch.Tensor, run: Callable[[Any, Any], Any]
) -> None:
    torch.manual_seed(5)
    model = testmodules.TinyRegressor(hidden=3)
    version = local_shelf.upload("bare", model, serializer="lightning-checkpoint")
    assert version.serializer.safe is False
    assert version.serializer.details["written_by"] == "torch.save"
    with pytest.raises(UntrustedFormat):
        local_shelf.load(version.ref, cls=testmodules.TinyRegressor)
    checkpoint = local_shelf.load(version.ref, trust=True)
    assert set(checkpoint["state_dict"]) == set(model.state_dict())
    assert checkpoint["hyper_parameters"]["hidden"] == 3
    loaded = local_shelf.load(version.ref, trust=True, cls=testmodules.TinyRegressor)
    np.testing.assert_array_equal(run(loaded, x), run(model, x))


def test_a_hostile_checkpoint_never_runs_without_trust(local_shelf: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # The payload is real: unpickling it writes the marker.
    pickle.loads(pickle.dumps(frameworks.WritesMarker(str(marker))))
    assert marker.exists()
    marker.unlink()

    # A module whose checkpoint carries the payload among its hyperparameters.
    model = testmodules.TinyRegressor()
    model.hparams["payload"] = frameworks.WritesMarker(str(marker))
    version = local_shelf.upload("evil", model, serializer="lightning-checkpoint")
    assert not marker.exists()  # pickling it ran nothing
    with pytest.raises(UntrustedFormat):
        local_shelf.load(version.ref)  # core refuses before downloading
    with pytest.raises(UntrustedFormat):
        local_shelf.load(version.ref, cls=testmodules.TinyRegressor)
    assert not marker.exists()
    directory = local_shelf.download(version.ref, tmp_path / "dl")
    # Trusted, the serializer runs it (a shelf may also flag it in a pickle scan at upload).
    frameworks.assert_load_needs_trust(
        LightningCheckpointSerializer(), directory, version.serializer.details, marker
    )
