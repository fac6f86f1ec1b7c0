"""The ``onnx-protobuf`` serializer: an ``onnx.ModelProto`` as ``model.onnx`` (+ external data).

Nothing here imports ``onnx`` or ``onnxruntime`` at module level: choosing a serializer must stay
free of framework imports, so both are imported inside :meth:`save` and :meth:`load`.

Directory written by :meth:`OnnxProtobufSerializer.save`::

    model.onnx         the protobuf (graph, attributes, small tensors)
    model.onnx.data    every tensor of at least ``tensor_size_threshold`` bytes, only when the model
                       is saved with external data (large models, or ``external_data=True``)

Keeping weights in their own file also lets the shelf store them once: a new version that changes
only the graph or metadata re-uploads ``model.onnx`` and reuses the content-addressed data blob.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, PluginError
from modelshelf.serializers import SavedModel, Serializer, check_options, model_file, reading

if TYPE_CHECKING:
    import onnx

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
#: Models whose protobuf is larger than this are saved with external data by default.
EXTERNAL_DATA_THRESHOLD = 100 * 2**20
#: With external data, tensors smaller than this stay inside ``model.onnx`` (ONNX's own default).
TENSOR_SIZE_THRESHOLD = 1024
#: Protobuf cannot serialize a message of 2 GiB or more: such models need external data.
PROTOBUF_LIMIT = 2**31 - 1

SAVE_OPTIONS = ("external_data", "external_data_threshold", "tensor_size_threshold", "full_check")
LOAD_OPTIONS = ("session", "providers", "session_options")


class InvalidOnnxModel(ModelshelfError, ValueError):
    """The object or an option given to the ONNX serializer cannot be used (one-line message)."""


class OnnxProtobufSerializer(Serializer):
    """Saves ``onnx.ModelProto`` objects in the ONNX protobuf format. Safe: loading is parsing.

    ``save`` options:

    * ``external_data`` (``bool | None``, default ``None``): ``True`` always writes tensors to
      ``model.onnx.data``, ``False`` never does (refused for models of 2 GiB or more), ``None``
      does when the model is larger than ``external_data_threshold``.
    * ``external_data_threshold`` (``int`` bytes, default 100 MiB).
    * ``tensor_size_threshold`` (``int`` bytes, default 1024): smaller tensors stay inline.
    * ``full_check`` (``bool``, default ``False``): also run ONNX shape inference in the checker.

    ``load`` options:

    * ``session`` (``bool``, default ``False``): return an ``onnxruntime.InferenceSession``
      instead of the ``ModelProto``.
    * ``providers`` (list of str, default ``["CPUExecutionProvider"]``) and ``session_options``
      (``onnxruntime.SessionOptions``): passed to the session.
    """

    name = "onnx-protobuf"
    framework = "onnx"
    format = "onnx"
    safe = True
    # onnx.ModelProto is an alias: the real class lives in the generated protobuf module.
    claims = ("onnx.onnx_ml_pb2.ModelProto",)

    # --- save ----------------------------------------------------------------------------------

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        """Check ``obj`` with ``onnx.checker`` and write it below the empty ``directory``.

        A model that fails the checker, or whose tensors point at external files that were never
        loaded, is refused before anything is written (except for models of 2 GiB or more, which
        the checker can only read from disk: those are written first and removed on failure).
        The caller's ``ModelProto`` is never modified.
        """
        import onnx

        check_options(self.name, "save", options, SAVE_OPTIONS)
        if not isinstance(obj, onnx.ModelProto):
            raise InvalidOnnxModel(
                f"onnx-protobuf saves onnx.ModelProto objects, not {type(obj).__name__}"
            )
        external = options.get("external_data")
        threshold = _non_negative_int(
            options.get("external_data_threshold", EXTERNAL_DATA_THRESHOLD),
            "external_data_threshold",
        )
        tensor_threshold = _non_negative_int(
            options.get("tensor_size_threshold", TENSOR_SIZE_THRESHOLD), "tensor_size_threshold"
        )
        full_check = bool(options.get("full_check", False))
        if external not in (None, True, False):
            raise InvalidOnnxModel(f"external_data must be True, False or None, not {external!r}")

        unloaded = sorted(
            {_external_location(t) for t in _all_tensors(obj) if _uses_external_data(t)}
        )
        if unloaded:
            raise InvalidOnnxModel(
                f"this ModelProto refers to external data files it has not loaded ({', '.join(unloaded)}): "
                "load it with onnx.load(path) (load_external_data=True) before uploading"
            )

        # Serialize once and reuse the bytes for the size, the checker and the file: each of
        # ByteSize(), check_model(proto) and save_model(proto) would serialize again (~1 s/GiB).
        data: bytes | None
        try:
            data = obj.SerializeToString()
        except Exception:  # protobuf may refuse messages over 2 GiB outright
            data = None
        too_big = data is None or len(data) >= PROTOBUF_LIMIT
        size = PROTOBUF_LIMIT if data is None else len(data)
        if external is False and too_big:
            raise InvalidOnnxModel(
                f"this model is {size} bytes or more, over protobuf's 2 GiB limit: it must be "
                "saved with external_data=True (or leave external_data unset)"
            )
        if not too_big:
            assert data is not None
            _check(data, full_check)  # before anything is written

        use_external = external if external is not None else (too_big or size > threshold)
        path = directory / MODEL_FILE
        if use_external:
            # save_model(save_as_external_data=True) moves tensor bytes out of the proto it is
            # given: work on a copy so the caller's model keeps its weights.
            model = onnx.ModelProto()
            model.CopyFrom(obj)
            onnx.save_model(
                model,
                os.fspath(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=DATA_FILE,
                size_threshold=tensor_threshold,
                convert_attribute=False,
            )
        else:
            assert data is not None
            path.write_bytes(data)  # exactly what onnx.save_model writes
        del data

        if too_big:
            try:
                _check(os.fspath(path), full_check)
            except InvalidOnnxModel:
                for written in directory.iterdir():
                    written.unlink()
                raise

        files = sorted(p.name for p in directory.iterdir())
        return SavedModel(
            framework="onnx",
            framework_version=onnx.__version__,
            signature=signature(obj),
            details={
                "model_file": MODEL_FILE,
                "external_data": bool(use_external and DATA_FILE in files),
                "files": files,
                "ir_version": int(obj.ir_version),
                "opset_import": [
                    {"domain": op.domain or "ai.onnx", "version": int(op.version)}
                    for op in obj.opset_import
                ],
                "producer_name": obj.producer_name,
                "producer_version": obj.producer_version,
                "model_version": int(obj.model_version),
                "graph_name": obj.graph.name,
                "metadata_props": {p.key: p.value for p in obj.metadata_props},
                "proto_bytes": size,
            },
        )

    # --- load ----------------------------------------------------------------------------------

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        """Return the ``onnx.ModelProto`` (with external data loaded), or an
        ``onnxruntime.InferenceSession`` when ``session=True``.

        Every external data location is checked to be a plain relative file inside ``directory``
        before ONNX or onnxruntime open it, so a crafted model cannot read other files.
        """
        check_options(self.name, "load", options, LOAD_OPTIONS)
        import onnx

        # The file name comes from the manifest, which whoever can write the shelf controls.
        relative = details.get("model_file", MODEL_FILE)
        path = model_file(directory, relative)
        # Parse without external data first: the locations must be vetted before anything follows them.
        with reading(str(relative), "onnx"):
            model = onnx.load_model(os.fspath(path), load_external_data=False)
        if not model.HasField("graph"):
            # An empty or foreign file parses as an empty ModelProto: protobuf has no magic number.
            raise InvalidModel(
                f"could not read {relative!r} of this version with onnx: it holds no graph; the "
                "stored file is damaged or was not written by this serializer"
            )
        external = _vet_external_locations(model, directory)

        if options.get("session", False):
            try:
                import onnxruntime
            except ImportError:
                raise PluginError(
                    "session=True needs onnxruntime, which is not installed: "
                    "pip install onnxruntime (or modelshelf-onnx[runtime])"
                ) from None
            providers: Sequence[str] = options.get("providers") or ["CPUExecutionProvider"]
            # From the path (not bytes) so onnxruntime finds external data next to the model.
            with reading(str(relative), "onnxruntime"):
                return onnxruntime.InferenceSession(
                    os.fspath(path),
                    sess_options=options.get("session_options"),
                    providers=list(providers),
                )
        if external:
            _read_external_data(model, directory)
        return model


# --- signature -------------------------------------------------------------------------------


def signature(model: onnx.ModelProto) -> dict[str, Any]:
    """Graph inputs (minus initializers, which old IR versions list as inputs) and outputs."""
    initializers = {t.name for t in model.graph.initializer}
    return {
        "inputs": [_describe_value(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [_describe_value(v) for v in model.graph.output],
    }


def _describe_value(value: Any) -> dict[str, Any]:
    return {"name": value.name, **_describe_type(value.type)}


def _describe_type(tp: Any) -> dict[str, Any]:
    """A JSON-compatible description of an ``onnx.TypeProto``.

    Tensor shapes list each dimension as an int (fixed), a str (symbolic, e.g. ``"batch"``) or
    ``None`` (unknown); ``shape`` itself is ``None`` when even the rank is unknown.
    """
    kind = tp.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(tp, kind)
        shape: list[int | str | None] | None = None
        if tensor.HasField("shape"):
            shape = [
                int(d.dim_value)
                if d.HasField("dim_value")
                else (d.dim_param if d.HasField("dim_param") else None)
                for d in tensor.shape.dim
            ]
        out: dict[str, Any] = {"dtype": _dtype_name(tensor.elem_type), "shape": shape}
        if kind == "sparse_tensor_type":
            out["type"] = "sparse_tensor"
        return out
    if kind in ("sequence_type", "optional_type"):
        return {"type": kind[: -len("_type")], "elem": _describe_type(getattr(tp, kind).elem_type)}
    if kind == "map_type":
        return {
            "type": "map",
            "key_dtype": _dtype_name(tp.map_type.key_type),
            "value": _describe_type(tp.map_type.value_type),
        }
    return {"type": kind or "unknown"}


def _dtype_name(elem_type: int) -> str:
    """numpy's name for an ONNX element type (``float32``), else ONNX's (``bfloat16``, ``string``)."""
    import onnx

    if elem_type == onnx.TensorProto.STRING:
        return "string"  # numpy would say "object"
    try:
        import numpy as np

        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except Exception:  # types numpy lacks (bfloat16, float8...), or UNDEFINED
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


# --- helpers ---------------------------------------------------------------------------------


def _check(model: bytes | str, full_check: bool) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=full_check)
    except Exception as exc:  # ValidationError, InferenceError: multi-line C++ messages
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise InvalidOnnxModel(
            f"onnx.checker refused this model ({type(exc).__name__}: {first}); "
            "fix the model (onnx.checker.check_model shows the full report) before uploading"
        ) from exc


def _all_tensors(model: onnx.ModelProto) -> Iterator[Any]:
    """Every TensorProto of the model: initializers and attribute tensors, in all subgraphs."""
    yield from _graph_tensors(model.graph)
    # Functions have no initializers, but their nodes can carry tensor attributes.
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for subgraph in attribute.graphs:
            yield from _graph_tensors(subgraph)


def _uses_external_data(tensor: Any) -> bool:
    import onnx

    return bool(
        tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL
    )


def _external_location(tensor: Any) -> str:
    for entry in tensor.external_data:
        if entry.key == "location":
            return str(entry.value)
    return ""


def _vet_external_locations(model: onnx.ModelProto, directory: Path) -> bool:
    """Refuse external data that is not a regular file of the version, or that a tensor would
    read past the end of.

    Runs before ONNX or onnxruntime follow any location, and before anything allocates a buffer
    of a length read from the file: a stored length is only a claim until checked against the
    file's real size. Returns whether the model uses external data at all.
    """
    found = False
    for tensor in _all_tensors(model):
        if not _uses_external_data(tensor):
            continue
        found = True
        location = _external_location(tensor)
        pure = PurePosixPath(location.replace("\\", "/"))
        if not location or pure.is_absolute() or ".." in pure.parts or ":" in location:
            raise InvalidOnnxModel(
                f"tensor {tensor.name!r} points at external data {location!r} outside the "
                "model directory: refusing to load this model"
            )
        try:
            target = model_file(directory, location)
        except IntegrityError as exc:
            raise IntegrityError(f"external data of tensor {tensor.name!r}: {exc}") from None
        offset, length = _external_range(tensor)
        size = target.stat().st_size
        end = offset + (length if length is not None else 0)
        if end > size:
            raise InvalidOnnxModel(
                f"external data of tensor {tensor.name!r} claims bytes {offset} to {end} of "
                f"{location!r}, which holds {size}: the stored version is damaged"
            )
    return found


def _external_range(tensor: Any) -> tuple[int, int | None]:
    """``(offset, length)`` of an external tensor; ``length`` is None for "to the end of file"."""
    values = {entry.key: entry.value for entry in tensor.external_data}
    numbers: dict[str, int | None] = {}
    for key in ("offset", "length"):
        text = values.get(key)
        if text is None or text == "":
            numbers[key] = None
            continue
        try:
            number = int(text)
        except ValueError:
            number = -1
        if number < 0:
            raise InvalidOnnxModel(
                f"external data of tensor {tensor.name!r} has {key} {text[:40]!r}, not a "
                "non-negative integer: the stored version is damaged"
            )
        numbers[key] = number
    # ONNX itself reads a length of 0 as "to the end of the file".
    return numbers["offset"] or 0, numbers["length"] or None


def _read_external_data(model: onnx.ModelProto, directory: Path) -> None:
    """Fill every external tensor's ``raw_data`` from its (already vetted) file.

    Not ``onnx.load_external_data_for_model``: ONNX refuses data files with more than one hard
    link, and the version's files are hard links into modelshelf's verified, content-addressed
    cache. Locations and byte ranges were checked by :func:`_vet_external_locations` and every
    file's sha256 was verified by the shelf, so reading them directly is safe.
    """
    for tensor in _all_tensors(model):
        if not _uses_external_data(tensor):
            continue
        location = _external_location(tensor)
        offset, length = _external_range(tensor)
        with model_file(directory, location).open("rb") as stream:
            stream.seek(offset)
            data = stream.read(length) if length is not None else stream.read()
        if length is not None and len(data) != length:
            raise InvalidOnnxModel(
                f"external data of tensor {tensor.name!r} is truncated in {location!r}: "
                "the stored version is damaged"
            )
        tensor.raw_data = data
        # Back to a plain inline tensor, exactly as before it was saved with external data.
        del tensor.external_data[:]
        tensor.ClearField("data_location")


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOnnxModel(f"{name} must be a non-negative number of bytes, not {value!r}")
    return value
