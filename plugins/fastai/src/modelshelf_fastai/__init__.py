"""modelshelf-fastai: fastai ``Learner`` objects.

* ``fastai-safetensors`` (default for every ``fastai.learner.Learner``, safe): the model's weights
  as safetensors, loaded into a learner the caller builds (``load(ref, learner=...)``); tabular
  preprocessing recorded and checked.
* ``fastai-export`` (opt-in, needs trust): ``learn.export()``, a pickle, back through
  ``load_learner``.

Importing this module imports neither fastai nor torch: learners are claimed by qualified name.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import FastaiExportSerializer, FastaiSafetensorsSerializer

__all__ = [
    "FastaiExportSerializer",
    "FastaiSafetensorsSerializer",
    "modelshelf_register_serializers",
]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(FastaiSafetensorsSerializer())
    register(FastaiExportSerializer())
