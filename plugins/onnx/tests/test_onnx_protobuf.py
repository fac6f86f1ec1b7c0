"""modelshelf-onnx against real ONNX models, a real filesystem shelf and real onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelNotFound, ModelshelfError
from modelshelf.testing.single_file import one_line, version_with_decoy
from modelshelf_onnx.serializer import DATA_FILE, MODEL_FILE, OnnxProtobufSerializer, signature

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def run_session(model_or_session: Any, x: np.ndarray) -> np.ndarray:
    session = model_or_session
    if isinstance(model_or_session, onnx.ModelProto):
        session = ort.InferenceSession(
            model_or_session.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    return np.asarray(session.run(None, {"x": x})[0])


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


# --- plugin wiring -----------------------------------------------------------------------------


def test_claims_the_real_modelproto_class(model: Any) -> None:
    # onnx.ModelProto is re-exported; the claim must name the class where it really lives.
    assert OnnxProtobufSerializer.claims == (
        f"{type(model).__module__}.{type(model).__qualname__}",
    )
    assert OnnxProtobufSerializer().claim_depth(model) == 0
    assert OnnxProtobufSerializer().claim_depth(onnx.GraphProto()) is None


# --- round trips through a shelf ---------------------------------------------------------------


def test_upload_records_framework_signature_and_opsets(local_shelf: Any, model: Any) -> None:
    version = local_shelf.upload("linear", model)
    assert version.serializer.name == "onnx-protobuf"
    assert version.serializer.safe is True
    assert (version.framework.name, version.framework.version) == ("onnx", onnx.__version__)
    assert version.signature == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3]}],
    }
    details = version.serializer.details
    assert details["ir_version"] == model.ir_version
    assert details["opset_import"] == [{"domain": "ai.onnx", "version": 17}]
    assert details["producer_name"] == "tests"
    assert details["external_data"] is False
    assert [f.path for f in version.files] == [MODEL_FILE]


def test_load_returns_an_identical_modelproto(
    local_shelf: Any, model: Any, sample_input: np.ndarray
) -> None:
    local_shelf.upload("linear", model)
    loaded = local_shelf.load("linear:1")
    assert isinstance(loaded, onnx.ModelProto)
    assert loaded == model
    np.testing.assert_array_equal(
        run_session(loaded, sample_input), run_session(model, sample_input)
    )


def test_load_session_runs_the_model(
    local_shelf: Any, model: Any, sample_input: np.ndarray, reference: Any
) -> None:
    local_shelf.upload("linear", model)
    session = local_shelf.load("linear:1", session=True)
    assert isinstance(session, ort.InferenceSession)
    assert session.get_providers() == ["CPUExecutionProvider"]
    out = run_session(session, sample_input)
    np.testing.assert_array_equal(out, run_session(model, sample_input))
    np.testing.assert_allclose(out, reference(model, sample_input), rtol=1e-5, atol=1e-5)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, local_shelf_path: Path, model: Any, sample_input: np.ndarray, tmp_path: Path
) -> None:
    local_shelf.upload("team/linear", model, metrics={"mse": 0.5})
    code = (
        "import json, sys, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "versions = [v.version for v in shelf.versions('team/linear')]\n"
        "dest = shelf.download('team/linear:1', sys.argv[2])\n"
        "files = sorted(p.name for p in dest.iterdir())\n"
        "x = np.array(json.loads(sys.argv[3]), dtype=np.float32)\n"
        "session = shelf.load('team/linear:1', session=True)\n"
        "proto = shelf.load('team/linear:1')\n"
        "out = session.run(None, {'x': x})[0]\n"
        "print(json.dumps({'versions': versions, 'files': files, 'type': type(proto).__name__,\n"
        "                  'out': out.tolist(), 'hex': out.tobytes().hex()}))\n"
    )
    result = run_python(
        code, str(local_shelf_path), str(tmp_path / "dl"), json.dumps(sample_input.tolist())
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"] == [1]
    assert report["files"] == [MODEL_FILE]
    assert report["type"] == "ModelProto"
    expected = run_session(model, sample_input)
    # Bit-identical: the same bytes went through the same runtime.
    assert report["hex"] == expected.tobytes().hex()


# --- external data -----------------------------------------------------------------------------


def test_large_model_goes_to_external_data_and_comes_back(
    local_shelf: Any, big_model: Any, tmp_path: Path
) -> None:
    before = big_model.SerializeToString()
    version = local_shelf.upload("big", big_model, options={"external_data_threshold": 10_000})
    paths = sorted(f.path for f in version.files)
    assert paths == [MODEL_FILE, DATA_FILE]
    sizes = {f.path: f.size for f in version.files}
    assert sizes[DATA_FILE] >= 128 * 128 * 4  # the weights left the protobuf
    assert sizes[MODEL_FILE] < 10_000
    assert version.serializer.details["external_data"] is True
    # The caller's model still holds its weights (save worked on a copy).
    assert big_model.SerializeToString() == before

    loaded = local_shelf.load("big:1")
    assert loaded == big_model
    x = np.random.default_rng(3).standard_normal((2, 128)).astype(np.float32)
    session = local_shelf.load("big:1", session=True)
    np.testing.assert_array_equal(run_session(session, x), run_session(big_model, x))

    # link=False: ONNX refuses to read external data through hard links (the cache default).
    dest = local_shelf.download("big:1", tmp_path / "dl", link=False)
    assert sorted(p.name for p in dest.iterdir()) == [MODEL_FILE, DATA_FILE]
    # The downloaded directory is a normal ONNX model with external data.
    plain = onnx.load(str(dest / MODEL_FILE))
    for got, want in zip(plain.graph.initializer, big_model.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(got), numpy_helper.to_array(want))


def test_below_threshold_stays_in_one_file(local_shelf: Any, big_model: Any) -> None:
    version = local_shelf.upload("big", big_model, options={"external_data_threshold": 10**9})
    assert [f.path for f in version.files] == [MODEL_FILE]


def test_external_data_can_be_forced_either_way(local_shelf: Any, model: Any) -> None:
    forced = local_shelf.upload(
        "linear", model, options={"external_data": True, "tensor_size_threshold": 0}
    )
    assert sorted(f.path for f in forced.files) == [MODEL_FILE, DATA_FILE]
    assert local_shelf.load("linear:1") == model
    inline = local_shelf.upload(
        "linear", model, options={"external_data": False, "external_data_threshold": 0}
    )
    assert [f.path for f in inline.files] == [MODEL_FILE]


def test_new_graph_with_same_weights_reuses_the_data_blob(
    local_shelf: Any, make_model: Any
) -> None:
    first = make_model(128, 128, seed=1, doc="first")
    second = make_model(128, 128, seed=1, doc="second graph, same weights")
    options = {"external_data_threshold": 0}
    v1 = {f.path: f.sha256 for f in local_shelf.upload("big", first, options=options).files}
    v2 = {f.path: f.sha256 for f in local_shelf.upload("big", second, options=options).files}
    assert v1[DATA_FILE] == v2[DATA_FILE]
    assert v1[MODEL_FILE] != v2[MODEL_FILE]


def test_model_with_unloaded_external_data_is_refused(
    local_shelf: Any, big_model: Any, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    onnx.save_model(big_model, str(source / "m.onnx"), save_as_external_data=True, location="w.bin")
    hollow = onnx.load(str(source / "m.onnx"), load_external_data=False)
    with pytest.raises(ModelshelfError, match=r"w\.bin.*onnx\.load"):
        local_shelf.upload("big", hollow)
    with pytest.raises(ModelNotFound):
        local_shelf.versions("big")


# --- refusals and errors -----------------------------------------------------------------------


def test_broken_model_is_refused_before_anything_is_written(
    local_shelf: Any, model: Any, local_shelf_path: Path
) -> None:
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    broken.graph.node[1].input[0] = "does_not_exist"  # Add reads a value nobody produces
    with pytest.raises(ModelshelfError) as caught:
        local_shelf.upload("broken", broken)
    message = str(caught.value)
    assert "onnx.checker refused" in message and "\n" not in message
    with pytest.raises(ModelNotFound):
        local_shelf.versions("broken")
    blobs = (
        list((local_shelf_path / "blobs").rglob("*"))
        if (local_shelf_path / "blobs").exists()
        else []
    )
    assert not [b for b in blobs if b.is_file()]


def test_unknown_operator_is_refused(local_shelf: Any, model: Any) -> None:
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    broken.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ModelshelfError, match=r"onnx.checker refused"):
        local_shelf.upload("broken", broken)


def test_unknown_options_are_named(local_shelf: Any, model: Any) -> None:
    with pytest.raises(
        ModelshelfError, match=r"onnx-protobuf does not understand save option.*externaldata"
    ):
        local_shelf.upload("linear", model, options={"externaldata": True})
    local_shelf.upload("linear", model)
    with pytest.raises(
        ModelshelfError, match=r"onnx-protobuf does not understand load option.*sesion"
    ):
        local_shelf.load("linear:1", sesion=True)


def test_external_data_outside_the_directory_is_refused(tmp_path: Path, big_model: Any) -> None:
    serializer = OnnxProtobufSerializer()
    directory = tmp_path / "version"
    directory.mkdir()
    saved = serializer.save(big_model, directory, external_data=True)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((directory / DATA_FILE).read_bytes())
    # Rewrite the stored model so that its weights point outside the version directory.
    crafted = onnx.load(str(directory / MODEL_FILE), load_external_data=False)
    for tensor in crafted.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    (directory / MODEL_FILE).write_bytes(crafted.SerializeToString())
    for options in ({}, {"session": True}):
        with pytest.raises(ModelshelfError, match=r"outside the model directory"):
            serializer.load(directory, details=saved.details, **options)


def test_missing_onnxruntime_gives_a_clear_error(
    local_shelf: Any, local_shelf_path: Path, model: Any
) -> None:
    local_shelf.upload("linear", model)
    code = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None  # as if it were not installed\n"
        "import modelshelf\n"
        "from modelshelf.errors import PluginError\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert type(shelf.load('linear:1')).__name__ == 'ModelProto'\n"
        "try:\n"
        "    shelf.load('linear:1', session=True)\n"
        "except PluginError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    result = run_python(code, str(local_shelf_path))
    assert result.returncode == 0, result.stderr
    assert "pip install onnxruntime" in result.stdout


# --- signatures --------------------------------------------------------------------------------


def test_signature_of_unusual_types(local_shelf: Any) -> None:
    """Unknown dims, int64/bool tensors and sequences are described, not dropped."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["a"], ["a_out"]),
            helper.make_node("SequenceLength", ["seq"], ["n"]),
            helper.make_node("Not", ["flag"], ["flag_out"]),
        ],
        "odd",
        [
            helper.make_tensor_value_info("a", TensorProto.INT64, ["n"]),
            helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, [None, 2]),
        ],
        [
            helper.make_tensor_value_info("a_out", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
            helper.make_tensor_value_info("flag_out", TensorProto.BOOL, [None, 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    version = local_shelf.upload("odd", model)
    assert version.signature == {
        "inputs": [
            {"name": "a", "dtype": "int64", "shape": ["n"]},
            {"name": "seq", "type": "sequence", "elem": {"dtype": "float32", "shape": None}},
            {"name": "flag", "dtype": "bool", "shape": [None, 2]},
        ],
        "outputs": [
            {"name": "a_out", "dtype": "int64", "shape": ["n"]},
            {"name": "n", "dtype": "int64", "shape": []},
            {"name": "flag_out", "dtype": "bool", "shape": [None, 2]},
        ],
    }
    assert local_shelf.load("odd:1") == model


def test_signature_of_unknown_rank_and_maps() -> None:
    # The checker refuses such graph inputs, but the signature code must not trip over them.
    graph = helper.make_graph(
        [],
        "loose",
        [
            helper.make_tensor_value_info("anything", TensorProto.BFLOAT16, None),
            helper.make_value_info(
                "m",
                helper.make_map_type_proto(
                    TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
                ),
            ),
        ],
        [],
    )
    assert signature(helper.make_model(graph))["inputs"] == [
        {"name": "anything", "dtype": "bfloat16", "shape": None},
        {
            "name": "m",
            "type": "map",
            "key_dtype": "string",
            "value": {"dtype": "float32", "shape": []},
        },
    ]


def test_initializers_listed_as_inputs_are_not_in_the_signature(
    local_shelf: Any, model: Any
) -> None:
    old_style = onnx.ModelProto()
    old_style.CopyFrom(model)
    # IR < 4 models list every initializer among the graph inputs too.
    old_style.graph.input.extend([helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3])])
    version = local_shelf.upload("old", old_style)
    assert [i["name"] for i in version.signature["inputs"]] == ["x"]


# --- hostile and damaged versions ----------------------------------------------------------------


@pytest.mark.parametrize("session", [False, True])
def test_model_file_named_by_details_must_be_a_file_of_the_version(
    tmp_path: Path, model: Any, session: bool
) -> None:
    serializer = OnnxProtobufSerializer()
    version, saved, outside = version_with_decoy(
        serializer, model, tmp_path, MODEL_FILE, link="link.onnx"
    )
    for value in ("/etc/passwd", str(outside), f"../{outside.name}", 7, "link.onnx", "other.onnx"):
        details = {**saved.details, "model_file": value}
        with pytest.raises(IntegrityError) as caught:
            serializer.load(version, details=details, session=session)
        assert repr(value)[:20] in one_line(caught.value)


def _with_external_range(directory: Path, **entries: str) -> None:
    """Rewrite every external tensor of the stored model.onnx with these external_data entries."""
    crafted = onnx.load(str(directory / MODEL_FILE), load_external_data=False)
    for tensor in crafted.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            values = {e.key: e.value for e in tensor.external_data}
            values.update(entries)
            del tensor.external_data[:]
            for key, value in values.items():
                tensor.external_data.add(key=key, value=value)
    (directory / MODEL_FILE).write_bytes(crafted.SerializeToString())


@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize(
    "entries",
    [
        {"length": str(2**40)},  # allocating this raised MemoryError
        {"offset": str(2**40)},
        {"offset": "-5"},
        {"length": "lots"},
    ],
)
def test_external_data_ranges_are_checked_against_the_file_before_reading(
    tmp_path: Path, big_model: Any, entries: dict[str, str], session: bool
) -> None:
    serializer = OnnxProtobufSerializer()
    saved = serializer.save(big_model, tmp_path, external_data=True)
    _with_external_range(tmp_path, **entries)
    with pytest.raises(ModelshelfError) as caught:
        serializer.load(tmp_path, details=saved.details, session=session)
    assert "external data of tensor" in one_line(caught.value)


@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_model_file_is_one_invalid_model_line(
    tmp_path: Path, model: Any, damage: str, session: bool
) -> None:
    serializer = OnnxProtobufSerializer()
    saved = serializer.save(model, tmp_path)
    data = (tmp_path / MODEL_FILE).read_bytes()
    (tmp_path / MODEL_FILE).write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details, session=session)
    assert "'model.onnx'" in one_line(caught.value) and "onnx" in str(caught.value)
