"""Stand-ins for other plugins' serializers, for tests of how claims are resolved.

A framework whose objects are also objects of another framework (a Keras model under the torch
backend is a ``torch.nn.Module``) must win the claim on them. Test that without installing the
other plugin::

    torch_module = claim_only("test-torch-module", "torch.nn.modules.module.Module", framework="torch")
    assert choose(model, [torch_module, KerasV3Serializer()]).name == "keras-v3"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelshelf.serializers import SavedModel, Serializer

__all__ = ["claim_only"]


def claim_only(name: str, *claims: str, framework: str = "test") -> Serializer:
    """A serializer named ``name`` that claims ``claims`` (qualified class names) and nothing
    more: choosing it for saving or loading fails the test."""

    def refuse(self: Serializer, *args: Any, **options: Any) -> Any:
        raise AssertionError(f"the stand-in serializer {name!r} was chosen")

    def save(self: Serializer, obj: Any, directory: Path, **options: Any) -> SavedModel:
        raise AssertionError(f"the stand-in serializer {name!r} was chosen")

    attributes = {"name": name, "framework": framework, "format": "test", "claims": tuple(claims)}
    cls: type[Serializer] = type(
        f"ClaimOnly[{name}]", (Serializer,), {**attributes, "save": save, "load": refuse}
    )
    return cls()
