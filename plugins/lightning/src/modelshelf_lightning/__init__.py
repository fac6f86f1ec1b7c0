"""modelshelf-lightning: PyTorch Lightning modules (``lightning`` and ``pytorch_lightning``).

* ``lightning-safetensors`` (default for every ``LightningModule``, safe): weights as safetensors
  plus hyperparameters as JSON, loaded into the class the caller names (``load(ref, cls=Model)``).
* ``lightning-checkpoint`` (opt-in, needs trust): the full checkpoint, through pickle.

Importing this module imports neither Lightning nor torch: classes are claimed by qualified name.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import LightningCheckpointSerializer, LightningSafetensorsSerializer

__all__ = [
    "LightningCheckpointSerializer",
    "LightningSafetensorsSerializer",
    "modelshelf_register_serializers",
]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(LightningSafetensorsSerializer())
    register(LightningCheckpointSerializer())
