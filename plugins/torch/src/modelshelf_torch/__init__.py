"""modelshelf plugin for PyTorch: registers four serializers.

* ``torch-safetensors`` (default for ``torch.nn.Module``, safe): the state dict as safetensors.
* ``torch-export`` (default for ``torch.export.ExportedProgram``, needs trust to load).
* ``torch-script`` (default for TorchScript modules, needs trust to load).
* ``torch-pickle`` (opt-in only, needs trust to load): the whole module through ``torch.save``.

Importing this module never imports ``torch`` or ``safetensors``: serializers claim classes by
qualified name and import the framework inside save/load.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import (
    TorchExportSerializer,
    TorchPickleSerializer,
    TorchSafetensorsSerializer,
    TorchScriptSerializer,
)

__all__ = [
    "TorchExportSerializer",
    "TorchPickleSerializer",
    "TorchSafetensorsSerializer",
    "TorchScriptSerializer",
    "modelshelf_register_serializers",
]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(TorchSafetensorsSerializer())
    register(TorchExportSerializer())
    register(TorchScriptSerializer())
    register(TorchPickleSerializer())
