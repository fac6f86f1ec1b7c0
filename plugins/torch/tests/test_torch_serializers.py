"""modelshelf-torch against real torch modules and a real filesystem shelf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import modelshelf_torch_testnets as testnets  # on sys.path: see conftest.py
import numpy as np
import pytest
import safetensors.torch as safetensors_torch
import torch
from modelshelf.errors import ModelNotFound, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.testing.frameworks import chosen_serializer
from modelshelf.testing.single_file import one_line
from modelshelf_torch.serializers import (
    SAFETENSORS_FILE,
    TorchExportSerializer,
    TorchPickleSerializer,
    TorchScriptSerializer,
)

#: This folder, for the fresh processes that import its helper module by name.
TESTS_DIR = Path(__file__).parent


def run_python(code: str, *args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180, env=env
    )


def export(module: Any, x: Any) -> Any:
    batch = torch.export.Dim("batch")
    return torch.export.export(module, (x,), dynamic_shapes=({0: batch},))


# --- plugin wiring -----------------------------------------------------------------------------


def test_most_specific_claim_wins(tiny: Any, x: Any) -> None:
    # A ScriptModule is also an nn.Module: torch-script claims it more specifically.
    scripted = torch.jit.script(tiny)
    traced = torch.jit.trace(tiny, x)
    assert isinstance(scripted, torch.nn.Module) and isinstance(traced, torch.nn.Module)
    assert chosen_serializer(tiny) == "torch-safetensors"
    assert chosen_serializer(torch.nn.Sequential(torch.nn.Linear(2, 2))) == "torch-safetensors"
    assert chosen_serializer(scripted) == "torch-script"
    assert chosen_serializer(traced) == "torch-script"
    assert chosen_serializer(export(tiny, x)) == "torch-export"
    # The claimed names are the real qualified names of this torch version.
    assert (
        type(scripted).__module__ + "." + type(scripted).__qualname__
        in TorchScriptSerializer.claims
    )
    program_type = type(export(tiny, x))
    assert TorchExportSerializer.claims == (
        f"{program_type.__module__}.{program_type.__qualname__}",
    )
    assert TorchPickleSerializer.claims == ()


def test_safety_flags() -> None:
    serializers = {name: e.serializer for name, e in get_registry().serializers().items()}
    assert serializers["torch-safetensors"].safe is True
    assert serializers["torch-export"].safe is False
    assert serializers["torch-script"].safe is False
    assert serializers["torch-pickle"].safe is False


# --- torch-safetensors -------------------------------------------------------------------------


def test_safetensors_upload_records_tensors_and_class(local_shelf: Any, tiny: Any) -> None:
    version = local_shelf.upload("tiny", tiny)
    assert version.serializer.name == "torch-safetensors"
    assert (version.framework.name, version.framework.version) == ("torch", torch.__version__)
    assert [f.path for f in version.files] == [SAFETENSORS_FILE]
    details = version.serializer.details
    assert details["module_class"] == "modelshelf_torch_testnets.TinyNet"
    assert details["tensors"] == [
        {"name": "scale", "shape": [2], "dtype": "float32", "kind": "buffer"},
        {"name": "fc1.weight", "shape": [8, 4], "dtype": "float32", "kind": "parameter"},
        {"name": "fc1.bias", "shape": [8], "dtype": "float32", "kind": "parameter"},
        {"name": "fc2.weight", "shape": [2, 8], "dtype": "float32", "kind": "parameter"},
        {"name": "fc2.bias", "shape": [2], "dtype": "float32", "kind": "parameter"},
    ]
    assert details["parameter_count"] == 4 * 8 + 8 + 8 * 2 + 2
    assert details["aliases"] == {}
    assert version.signature is None


def test_safetensors_load_returns_state_dict_or_fills_a_module(
    local_shelf: Any, tiny: Any, x: Any, run: Any
) -> None:
    local_shelf.upload("tiny", tiny)
    state = local_shelf.load("tiny:1")
    assert isinstance(state, dict)
    assert list(state) == list(tiny.state_dict())
    for name, tensor in tiny.state_dict().items():
        assert torch.equal(state[name], tensor)

    torch.manual_seed(123)  # different initial weights: the load must overwrite them all
    fresh = testnets.TinyNet().eval()
    assert not np.array_equal(run(fresh, x), run(tiny, x))
    loaded = local_shelf.load("tiny:1", module=fresh)
    assert loaded is fresh
    np.testing.assert_array_equal(run(loaded, x), run(tiny, x))


def test_safetensors_file_is_plain_safetensors(local_shelf: Any, tiny: Any, tmp_path: Path) -> None:
    local_shelf.upload("tiny", tiny)
    dest = local_shelf.download("tiny:1", tmp_path / "dl")
    plain = safetensors_torch.load_file(str(dest / SAFETENSORS_FILE))
    assert set(plain) == set(tiny.state_dict())


def test_module_mismatch_is_a_one_line_error(local_shelf: Any, tiny: Any) -> None:
    local_shelf.upload("tiny", tiny)
    with pytest.raises(ModelshelfError) as caught:
        local_shelf.load("tiny:1", module=testnets.TinyNet(hidden=16))
    assert "shape mismatch for fc1.weight [8, 4] vs [16, 4]" in str(caught.value)
    assert "\n" not in str(caught.value)

    bigger = torch.nn.Sequential(torch.nn.Linear(4, 8))
    with pytest.raises(ModelshelfError, match=r"missing keys 0.weight, 0.bias.*strict=False"):
        local_shelf.load("tiny:1", module=bigger)


def test_strict_false_loads_the_matching_keys(local_shelf: Any, tiny: Any) -> None:
    local_shelf.upload("tiny", tiny)

    class Partial(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 8)
            self.other = torch.nn.Linear(3, 3)

    with pytest.raises(ModelshelfError, match=r"unexpected keys"):
        local_shelf.load("tiny:1", module=Partial())
    partial = local_shelf.load("tiny:1", module=Partial(), strict=False)
    assert torch.equal(partial.fc1.weight, tiny.fc1.weight)


def test_tied_weights_are_stored_once_and_stay_tied(local_shelf: Any, tmp_path: Path) -> None:
    torch.manual_seed(1)
    tied = testnets.TiedNet().eval()
    version = local_shelf.upload("tied", tied)
    assert version.serializer.details["aliases"] == {"head.weight": "embed.weight"}
    dest = local_shelf.download("tied:1", tmp_path / "dl")
    assert set(safetensors_torch.load_file(str(dest / SAFETENSORS_FILE))) == {"embed.weight"}

    state = local_shelf.load("tied:1")
    assert list(state) == ["embed.weight", "head.weight"]
    assert state["head.weight"] is state["embed.weight"]

    torch.manual_seed(2)
    fresh = local_shelf.load("tied:1", module=testnets.TiedNet().eval())
    assert fresh.head.weight is fresh.embed.weight
    tokens = torch.tensor([[1, 5, 7]])
    with torch.no_grad():
        np.testing.assert_array_equal(fresh(tokens).numpy(), tied(tokens).numpy())


def test_views_of_one_storage_and_non_contiguous_tensors(local_shelf: Any) -> None:
    sliced = testnets.SlicedNet()
    # safetensors itself refuses this state dict; the serializer must not.
    with pytest.raises((RuntimeError, ValueError), match=r"share memory|non contiguous"):
        safetensors_torch.save_file(dict(sliced.state_dict()), "/dev/null")
    local_shelf.upload("sliced", sliced)
    state = local_shelf.load("sliced:1")
    for name, tensor in sliced.state_dict().items():
        assert torch.equal(state[name], tensor), name


def test_dtypes_round_trip(local_shelf: Any) -> None:
    mixed = testnets.MixedDtypes()
    version = local_shelf.upload("mixed", mixed)
    dtypes = {t["name"]: t["dtype"] for t in version.serializer.details["tensors"]}
    assert dtypes == {
        "weight": "bfloat16",
        "half_precision": "float16",
        "counts": "int64",
        "mask": "bool",
    }
    state = local_shelf.load("mixed:1")
    for name, tensor in mixed.state_dict().items():
        assert state[name].dtype == tensor.dtype and torch.equal(state[name], tensor), name


def test_module_without_state(local_shelf: Any) -> None:
    local_shelf.upload("relu", torch.nn.ReLU())
    assert local_shelf.load("relu:1") == {}
    assert isinstance(local_shelf.load("relu:1", module=torch.nn.ReLU()), torch.nn.ReLU)


def test_extra_state_is_refused_with_a_way_out(local_shelf: Any) -> None:
    with pytest.raises(ModelshelfError, match=r"_extra_state.*torch-pickle"):
        local_shelf.upload("extra", testnets.WithExtraState(2, 2))
    with pytest.raises(ModelNotFound):
        local_shelf.versions("extra")


def test_meta_tensors_are_refused(local_shelf: Any) -> None:
    with torch.device("meta"):
        hollow = torch.nn.Linear(3, 3)
    with pytest.raises(ModelshelfError, match=r"meta device"):
        local_shelf.upload("hollow", hollow)


def test_bad_options(local_shelf: Any, tiny: Any) -> None:
    with pytest.raises(
        ModelshelfError, match=r"torch-safetensors does not understand save option.*dtype"
    ):
        local_shelf.upload("tiny", tiny, options={"dtype": "float16"})
    local_shelf.upload("tiny", tiny)
    with pytest.raises(
        ModelshelfError, match=r"torch-safetensors does not understand load option.*modul"
    ):
        local_shelf.load("tiny:1", modul=tiny)
    with pytest.raises(ModelshelfError, match=r"must be a torch.nn.Module"):
        local_shelf.load("tiny:1", module=tiny.state_dict())


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any,
    local_shelf_path: Path,
    tiny: Any,
    x: Any,
    run: Any,
    tmp_path: Path,
) -> None:
    local_shelf.upload("team/tiny", tiny)
    local_shelf.upload("team/tiny-script", torch.jit.script(tiny))
    code = (
        "import json, sys, torch, modelshelf\n"
        "from modelshelf_torch_testnets import TinyNet\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "versions = {n: [v.version for v in shelf.versions(n)] for n in shelf.models()}\n"
        "files = sorted(p.name for p in shelf.download('team/tiny:1', sys.argv[2]).iterdir())\n"
        "x = torch.tensor(json.loads(sys.argv[3]))\n"
        "net = shelf.load('team/tiny:1', module=TinyNet().eval())\n"
        "script = shelf.load('team/tiny-script:1', trust=True)\n"
        "with torch.no_grad():\n"
        "    out = {'module': net(x).numpy().tobytes().hex(), 'script': script(x).numpy().tobytes().hex()}\n"
        "print(json.dumps({'versions': versions, 'files': files, 'out': out,\n"
        "                  'script_type': type(script).__name__}))\n"
    )
    result = run_python(
        code, str(local_shelf_path), str(tmp_path / "dl"), json.dumps(x.tolist()), path=TESTS_DIR
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"] == {"team/tiny": [1], "team/tiny-script": [1]}
    assert report["files"] == [SAFETENSORS_FILE]
    assert report["script_type"] == "RecursiveScriptModule"
    expected = run(tiny, x).tobytes().hex()
    assert report["out"] == {"module": expected, "script": expected}


# --- torch-export ------------------------------------------------------------------------------


def test_export_round_trip_with_symbolic_batch(
    local_shelf: Any, tiny: Any, x: Any, run: Any
) -> None:
    program = export(tiny, x)
    version = local_shelf.upload("exported", program)
    assert version.serializer.name == "torch-export"
    assert version.serializer.safe is False
    (batch,) = {i["shape"][0] for i in version.signature["inputs"]}
    assert isinstance(batch, str)  # a symbol such as "s31", not the example's 5
    assert version.signature == {
        "inputs": [{"name": "x", "shape": [batch, 4], "dtype": "float32"}],
        "outputs": [
            {
                "name": version.signature["outputs"][0]["name"],
                "shape": [batch, 2],
                "dtype": "float32",
            }
        ],
    }
    assert batch in version.serializer.details["range_constraints"]
    assert version.serializer.details["state_dict"]["fc1.weight"] == {
        "shape": [8, 4],
        "dtype": "float32",
    }
    with pytest.raises(UntrustedFormat):
        local_shelf.load("exported:1")
    loaded = local_shelf.load("exported:1", trust=True)
    assert isinstance(loaded, torch.export.ExportedProgram)
    np.testing.assert_array_equal(run(loaded, x), run(tiny, x))
    # The dynamic batch survived: another batch size runs too.
    other = torch.randn(2, 4, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(run(loaded, other), run(tiny, other))


def test_unsafe_serializers_refuse_direct_loads_without_trust(tmp_path: Path) -> None:
    # Core checks trust before downloading; the serializers check again when called directly.
    for serializer in (TorchExportSerializer(), TorchScriptSerializer(), TorchPickleSerializer()):
        with pytest.raises(UntrustedFormat, match=r"trust=True"):
            serializer.load(tmp_path, details={})


# --- torch-script ------------------------------------------------------------------------------


def test_script_and_trace_round_trip(local_shelf: Any, tiny: Any, x: Any, run: Any) -> None:
    scripted = torch.jit.script(tiny)
    version = local_shelf.upload("scripted", scripted)
    assert version.serializer.name == "torch-script"
    assert version.signature == {
        "inputs": [{"name": "x", "type": "Tensor"}],
        "outputs": [{"type": "Tensor"}],
    }
    assert version.serializer.details["original_name"] == "TinyNet"
    with pytest.raises(UntrustedFormat):
        local_shelf.load("scripted:1")
    loaded = local_shelf.load("scripted:1", trust=True)
    assert isinstance(loaded, torch.jit.RecursiveScriptModule)
    np.testing.assert_array_equal(run(loaded, x), run(tiny, x))

    traced = torch.jit.trace(tiny, x)
    local_shelf.upload("traced", traced)
    np.testing.assert_array_equal(run(local_shelf.load("traced:1", trust=True), x), run(tiny, x))


def test_script_module_can_still_be_stored_as_weights(
    local_shelf: Any, tiny: Any, x: Any, run: Any
) -> None:
    version = local_shelf.upload("weights", torch.jit.script(tiny), serializer="torch-safetensors")
    assert version.serializer.name == "torch-safetensors"
    loaded = local_shelf.load("weights:1", module=testnets.TinyNet().eval())
    np.testing.assert_array_equal(run(loaded, x), run(tiny, x))


# --- torch-pickle ------------------------------------------------------------------------------


def test_pickle_is_opt_in_and_needs_trust(local_shelf: Any, tiny: Any, x: Any, run: Any) -> None:
    assert local_shelf.upload("tiny", tiny).serializer.name == "torch-safetensors"
    version = local_shelf.upload("tiny", tiny, serializer="torch-pickle")
    assert version.serializer.name == "torch-pickle"
    assert version.serializer.details["object_class"] == "modelshelf_torch_testnets.TinyNet"
    with pytest.raises(UntrustedFormat):
        local_shelf.load("tiny:2")
    loaded = local_shelf.load("tiny:2", trust=True)
    assert type(loaded) is type(tiny)
    np.testing.assert_array_equal(run(loaded, x), run(tiny, x))


def test_pickle_of_an_unimportable_class_says_so(
    local_shelf: Any, local_shelf_path: Path, tiny: Any
) -> None:
    local_shelf.upload("tiny", tiny, serializer="torch-pickle")
    code = (
        "import sys, modelshelf\n"
        "from modelshelf.errors import ModelshelfError\n"
        "try:\n"
        "    modelshelf.open(sys.argv[1]).load('tiny:1', trust=True)\n"
        "except ModelshelfError as exc:\n"
        "    print(exc)\n"
    )
    result = run_python(code, str(local_shelf_path))  # tests directory not on the path
    assert result.returncode == 0, result.stderr
    assert "modelshelf_torch_testnets.TinyNet" in result.stdout
    assert "must be importable" in result.stdout


# --- hostile and damaged versions ----------------------------------------------------------------


def _saved(name: str, tiny: Any, x: Any, directory: Path) -> tuple[Any, Any]:
    """``(serializer, SavedModel)`` of ``tiny`` in the form serializer ``name`` stores."""
    serializer = get_registry().serializers()[name].serializer
    obj = {
        "torch-export": lambda: export(tiny, x),
        "torch-script": lambda: torch.jit.script(tiny),
    }.get(name, lambda: tiny)()
    directory.mkdir(parents=True)
    return serializer, serializer.save(obj, directory)


SERIALIZERS = ["torch-safetensors", "torch-export", "torch-script", "torch-pickle"]


@pytest.mark.parametrize("name", SERIALIZERS)
def test_file_named_by_details_must_be_a_file_of_the_version(
    name: str, tiny: Any, x: Any, tmp_path: Path
) -> None:
    version = tmp_path / "snapshot" / "version"
    serializer, saved = _saved(name, tiny, x, version)
    stored = saved.details["file"]
    # A loadable copy outside the version: had load opened it, load would have succeeded.
    outside = tmp_path / "snapshot" / "outside.bin"
    outside.write_bytes((version / stored).read_bytes())
    (version / "link.bin").symlink_to(outside)
    hostile: list[object] = [
        "/etc/passwd",
        str(outside),
        "../outside.bin",
        5,
        None,
        "link.bin",
        "other.bin",
    ]
    for value in hostile:
        with pytest.raises(ModelshelfError) as caught:
            serializer.load(version, details={**saved.details, "file": value}, trust=True)
        assert type(caught.value).__name__ == "IntegrityError", caught.value
        assert repr(value)[:20] in one_line(caught.value)


@pytest.mark.parametrize("name", SERIALIZERS)
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_file_is_one_invalid_model_line(
    name: str, damage: str, tiny: Any, x: Any, tmp_path: Path
) -> None:
    serializer, saved = _saved(name, tiny, x, tmp_path / "version")
    path = tmp_path / "version" / saved.details["file"]
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": bytes(len(data)), "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(ModelshelfError) as caught:
        serializer.load(tmp_path / "version", details=saved.details, trust=True)
    assert type(caught.value).__name__ == "InvalidModel", caught.value
    assert repr(saved.details["file"]) in one_line(caught.value)


def test_hostile_alias_and_tensor_details_are_one_line(tiny: Any, x: Any, tmp_path: Path) -> None:
    serializer, saved = _saved("torch-safetensors", tiny, x, tmp_path / "version")
    for details in ({**saved.details, "aliases": ["w"]}, {**saved.details, "tensors": "w"}):
        try:
            serializer.load(tmp_path / "version", details=details)
        except ModelshelfError as exc:
            one_line(exc)
