"""modelshelf plugin for statsmodels: ``statsmodels-params`` (parameters and model spec of linear
models and GLMs, safe, default for their results) and ``statsmodels-pickle`` (the results' own
``save``, pickle, default for every other results object, needs trust).

Importing this module imports neither statsmodels nor numpy; they are imported when results are
saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import ParamsSerializer, PickleSerializer

__all__ = ["ParamsSerializer", "PickleSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(ParamsSerializer())
    register(PickleSerializer())
