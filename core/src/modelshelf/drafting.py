"""From what a user uploads (a model object, files, metadata) to a draft manifest and local files.

Everything here happens on the uploader's machine, before any request: metadata is checked, a
serializer is chosen and writes the model to files, every file is hashed. Publishing the draft is
:mod:`modelshelf.publishing`'s job.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .catalog import now
from .errors import ModelshelfError, NoSerializer
from .lineage import collect_lineage, current_user
from .localfiles import collect_files
from .plugins import explain_missing_serializer, get_registry
from .records import FileEntry, FrameworkInfo, ModelVersion, SerializerInfo
from .refs import check_file_path, check_name
from .serializers import Serializer, choose
from .transfer import hash_file, run_parallel

#: Files are hashed in batches of at most this many files or (about) this many bytes.
_HASH_BATCH_FILES = 64
_HASH_BATCH_BYTES = 4 << 20


@attrs.frozen
class Draft:
    """A manifest to publish (its number not yet claimed) and a local copy of every blob."""

    manifest: ModelVersion
    #: sha256 -> a local file with that content.
    blobs: Mapping[str, Path]


def check_json(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelshelfError(f"{what} must be a dict, got {type(value).__name__}")
    checked: dict[str, Any] = dict(value)
    for key in checked:
        if not isinstance(key, str):
            raise ModelshelfError(f"{what} keys must be strings, got {key!r}")
    try:
        json.dumps(checked, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelshelfError(f"{what} must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ModelshelfError(f"{what} is nested too deeply to store as JSON") from None
    return checked


def check_metrics(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelshelfError(f"metrics must be a dict, got {type(value).__name__}")
    metrics = dict(value)
    for key, number in metrics.items():
        if not isinstance(key, str):
            raise ModelshelfError(f"metric names must be strings, got {key!r}")
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not math.isfinite(number)
        ):
            raise ModelshelfError(f"metric {key!r} must be a finite number, got {number!r}")
    return {k: float(v) for k, v in metrics.items()}


def choose_serializer(obj: Any, name: str | None) -> Serializer:
    serializers = get_registry().serializers()
    if name is not None:
        entry = serializers.get(name)
        if entry is None:
            explained = explain_missing_serializer(name)
            if explained:
                raise NoSerializer(explained)
            raise NoSerializer(
                f"no serializer named {name!r} is installed (installed: {', '.join(sorted(serializers))})"
            )
        return entry.serializer
    return choose(obj, (e.serializer for e in serializers.values()))


def add_extra_files(local: dict[str, Path], extra_files: Iterable[str | os.PathLike[str]]) -> None:
    """Put ``extra_files`` beside the model under ``extra/``, refusing clashes."""
    if isinstance(extra_files, (str, os.PathLike)):
        extra_files = [extra_files]
    for relative, path in collect_files([Path(p) for p in extra_files]).items():
        key = check_file_path(f"extra/{relative}")
        if key in local:
            raise ModelshelfError(f"extra file {relative!r} clashes with a model file {key!r}")
        local[key] = path


def add_card(local: dict[str, Path], card: str | os.PathLike[str]) -> None:
    """Put the model card beside the model at its reserved path, refusing a clash."""
    from .cards import CARD_PATH, check_card_file

    path = check_card_file(card)
    clash = next((k for k in local if k == CARD_PATH or k == "card" or k.startswith("card/")), None)
    if clash is not None:
        raise ModelshelfError(
            f"the model card goes to {CARD_PATH}, but the model already has a file {clash!r}"
        )
    local[CARD_PATH] = path


def hash_files(local: Mapping[str, Path]) -> tuple[list[FileEntry], dict[str, Path]]:
    """Hash every file: the manifest entries, and one local copy per distinct content."""
    items = sorted(local.items())
    # Small files go to the workers in batches: a task per file costs more than hashing it.
    batches: list[list[tuple[str, Path]]] = [[]]
    batched = 0
    for item in items:
        if batched >= _HASH_BATCH_BYTES or len(batches[-1]) >= _HASH_BATCH_FILES:
            batches.append([])
            batched = 0
        batches[-1].append(item)
        with contextlib.suppress(OSError):
            batched += os.stat(item[1]).st_size
    hashed = [
        hashed_item
        for batch in run_parallel(
            lambda batch: [(path, local, *hash_file(local)) for path, local in batch], batches
        )
        for hashed_item in batch
    ]
    files = [FileEntry(path, sha, size) for path, _, sha, size in hashed]
    return files, {sha: p for _, p, sha, _ in hashed}


@contextlib.contextmanager
def draft_upload(
    name: str,
    obj: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    extra_files: Iterable[str | os.PathLike[str]] | None = None,
    serializer: str | None = None,
    options: Mapping[str, Any] | None = None,
    card: str | os.PathLike[str] | None = None,
) -> Iterator[Draft]:
    """The draft of uploading ``obj``; its files live until the ``with`` block ends.

    ``card`` is a markdown model card stored at ``card/README.md`` (see :mod:`modelshelf.cards`).
    """
    check_name(name)
    metadata = check_json(metadata, "metadata")
    metrics_ = check_metrics(metrics)
    params = check_json(params, "params")
    tags_ = {str(k): str(v) for k, v in check_json(tags, "tags").items()}
    if not isinstance(description, str):
        raise ModelshelfError("description must be a string")
    if card is not None:
        from .cards import check_card_file

        check_card_file(card)  # before the model is saved: a bad card fails fast
    chosen = choose_serializer(obj, serializer)
    entry = get_registry().serializers()[chosen.name]
    with tempfile.TemporaryDirectory(prefix="modelshelf-") as scratch:
        in_place = chosen.files(obj)
        if in_place is not None:
            local = dict(in_place)
            saved = chosen.describe(obj)
        else:
            folder = Path(scratch) / "model"
            folder.mkdir()
            saved = chosen.save(obj, folder, **dict(options or {}))
            local = collect_files([folder])
        if extra_files is not None:
            add_extra_files(local, extra_files)
        if card is not None:
            add_card(local, card)
        files, blobs = hash_files(local)
        framework = (
            FrameworkInfo(saved.framework, saved.framework_version)
            if chosen.records_framework
            else None
        )
        packages = {entry.distribution: entry.distribution_version}
        if framework is not None:
            packages.setdefault(framework.name, framework.version)
        manifest = ModelVersion(
            name=name,
            version=1,
            created_at=now(),
            created_by=current_user(),
            serializer=SerializerInfo(
                name=chosen.name,
                distribution=entry.distribution,
                distribution_version=entry.distribution_version,
                format=chosen.format,
                safe=chosen.safe if saved.safe is None else chosen.safe and saved.safe,
                details=check_json(saved.details, "serializer details"),
            ),
            framework=framework,
            files=tuple(sorted(files, key=lambda f: f.path)),
            total_size=sum(f.size for f in files),
            lineage=collect_lineage(packages),
            metadata=metadata,
            metrics=metrics_,
            params=params,
            tags=tags_,
            description=description,
            signature=check_json(saved.signature, "signature") if saved.signature else None,
        )
        yield Draft(manifest, blobs)
