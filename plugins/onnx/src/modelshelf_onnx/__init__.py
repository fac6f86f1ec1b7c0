"""modelshelf plugin for ONNX models: registers the ``onnx-protobuf`` serializer.

Importing this module must stay free: it never imports ``onnx`` or ``onnxruntime`` (the serializer
claims ``onnx.onnx_ml_pb2.ModelProto`` by name and imports ``onnx`` only inside save/load).
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import OnnxProtobufSerializer

__all__ = ["OnnxProtobufSerializer", "modelshelf_register_serializers"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(OnnxProtobufSerializer())
