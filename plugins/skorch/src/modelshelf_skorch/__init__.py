"""modelshelf-skorch: skorch neural nets (``NeuralNet``, ``NeuralNetClassifier``, ...).

* ``skorch-safetensors`` (default for every ``skorch.net.NeuralNet``, safe): module parameters as
  safetensors plus the history as JSON, loaded into a net the caller builds (``load(ref, net=...)``).
* ``skorch-pickle`` (opt-in, needs trust): the whole net, pickled.

Importing this module imports neither skorch nor torch: nets are claimed by qualified class name.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import SkorchPickleSerializer, SkorchSafetensorsSerializer

__all__ = [
    "SkorchPickleSerializer",
    "SkorchSafetensorsSerializer",
    "modelshelf_register_serializers",
]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(SkorchSafetensorsSerializer())
    register(SkorchPickleSerializer())
