"""The built-in ``several`` serializer: several models in one version.

``shelf.upload("churn", {"encoder": enc, "model": clf})`` saves each entry with the serializer
that claims it, into a sub-directory named after the entry, and ``load`` returns the same mapping.
The manifest records each entry's serializer (name, distribution, format, safety, details); the
version is safe only if every entry is, and a load without trust names the entries that need it.
``options={"serializers": {"model": "sklearn-joblib"}, "model": {...}}`` chooses an entry's
serializer and passes it options.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidRecord, ModelshelfError, NoSerializer, UntrustedFormat
from ..hookspecs import hookimpl
from ..plugins import get_registry
from ..refs import check_alias
from ..serializers import SavedModel, Serializer, choose, model_file


def _entries(obj: Any) -> dict[str, Any] | None:
    if type(obj) is not dict or not obj or not all(isinstance(key, str) for key in obj):
        return None
    return obj


class SeveralModelsSerializer(Serializer):
    name = "several"
    framework = "several"
    format = "one directory per entry"
    safe = True
    claims = ("builtins.dict",)

    def claim_depth(self, obj: Any) -> int | None:
        return 0 if _entries(obj) is not None else None

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        entries = _entries(obj)
        if entries is None:
            raise ModelshelfError(
                "several models are uploaded as a dict of name -> model, with string names"
            )
        chosen_names = options.pop("serializers", {}) or {}
        registry = get_registry().serializers()
        recorded: dict[str, Any] = {}
        safe = True
        for key, model in entries.items():
            try:
                check_alias(key)  # one path segment, the same rule as an alias
            except ModelshelfError:
                raise ModelshelfError(
                    f"entry name {key!r} is not usable as a folder name: use letters, digits, '.', '_' "
                    "and '-', starting with a letter or digit"
                ) from None
            wanted = chosen_names.get(key)
            if wanted is not None and wanted not in registry:
                raise NoSerializer(f"entry {key!r}: no serializer named {wanted!r} is installed")
            try:
                serializer = (
                    registry[wanted].serializer
                    if wanted
                    else choose(
                        model,
                        (e.serializer for e in registry.values() if e.serializer.name != self.name),
                    )
                )
            except NoSerializer as exc:
                raise NoSerializer(f"entry {key!r}: {exc}") from None
            entry = registry[serializer.name]
            target = directory / key
            target.mkdir()
            in_place = serializer.files(model)
            if in_place is not None:
                for relative, source in in_place.items():
                    destination = target.joinpath(*relative.split("/"))
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, destination)
                saved = serializer.describe(model)
            else:
                saved = serializer.save(model, target, **dict(options.get(key) or {}))
            entry_safe = serializer.safe if saved.safe is None else serializer.safe and saved.safe
            safe = safe and entry_safe
            recorded[key] = {
                "serializer": serializer.name,
                "distribution": entry.distribution,
                "distribution_version": entry.distribution_version,
                "format": serializer.format,
                "safe": entry_safe,
                "framework": saved.framework,
                "framework_version": saved.framework_version,
                "details": dict(saved.details),
                "signature": dict(saved.signature) if saved.signature else None,
            }
        return SavedModel("several", "", details={"entries": recorded}, safe=safe)

    def unsafe_part(self, details: Mapping[str, Any]) -> str:
        unsafe = [
            f"{key!r} as {info.get('format')} ({info.get('serializer')})"
            for key, info in _recorded(details).items()
            if not info.get("safe")
        ]
        return "several models, of which " + ", ".join(unsafe or ["one or more"])

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> dict[str, Any]:
        registry = get_registry().serializers()
        loaded: dict[str, Any] = {}
        for key, info in _recorded(details).items():
            name = info.get("serializer")
            entry = registry.get(name) if isinstance(name, str) else None
            if entry is None:
                raise NoSerializer(
                    f"entry {key!r} was saved by serializer {name!r}, which is not installed"
                )
            serializer = entry.serializer
            if not (serializer.safe and info.get("safe") is True) and not trust:
                raise UntrustedFormat(
                    f"entry {key!r} is stored as {info.get('format')} ({name}), and loading it can run "
                    "code stored in the files: load it with trust=True only if you trust whoever uploaded it"
                )
            folder = model_file(directory, key, kind="directory")
            inner = info.get("details")
            loaded[key] = serializer.load(
                folder,
                details=inner if isinstance(inner, dict) else {},
                trust=trust,
                **dict(options.get(key) or {}),
            )
        return loaded


def _recorded(details: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    entries = details.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise InvalidRecord(
            "a several-models version must record its entries as a mapping of mappings"
        )
    return entries


@hookimpl
def modelshelf_register_serializers(register):  # type: ignore[no-untyped-def]
    register(SeveralModelsSerializer())
