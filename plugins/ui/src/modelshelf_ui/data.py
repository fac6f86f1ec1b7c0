"""The documents the pages show, as plain JSON-ready dicts, read through the public Shelf API.

One :class:`ShelfView` serves a whole server lifetime or one static build. Version manifests are
written create-only and never change (a deletion replaces one by a tombstone, which
:meth:`~modelshelf.Shelf.list_versions` then leaves out), so the view keeps every manifest it has
read: showing a model again costs one listing plus the manifests published since. The first read
of a model goes through :meth:`~modelshelf.Shelf.versions`, which reads manifests in parallel and
through the local record cache on object storage.

Everything in these documents is data taken from the shelf: the pages must render it as text,
never as markup (see ``assets/app.js``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs
from modelshelf import ModelshelfError, ModelVersion, Shelf

T = TypeVar("T")
R = TypeVar("R")

#: Above this many unseen versions a model is read whole with ``Shelf.versions`` (parallel, one
#: listing) rather than version by version with ``Shelf.get`` (a listing each).
_READ_WHOLE_ABOVE = 8
#: Longest description kept in a model's version table; the version page has the whole text.
DESCRIPTION_IN_TABLE = 200
#: Parallel models read for the shelf page (each model: a listing, its aliases, its latest).
_MODEL_WORKERS = 8


def _time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    try:
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError):
        return value.isoformat()  # at the edges of the calendar: as recorded


def _plain(value: Any) -> Any:
    """attrs records, tuples, dicts and datetimes -> JSON types (unknown values as text)."""
    if attrs.has(type(value)):
        return {
            field.name: _plain(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.datetime):
        return _time(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)


def _parallel(function: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    items = list(items)
    if len(items) <= 1 or workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(items)), thread_name_prefix="modelshelf-ui"
    ) as pool:
        return list(pool.map(function, items))


def _holders(versions: Iterable[ModelVersion]) -> dict[str, list[int]]:
    """sha256 -> the versions holding a file with that content: deduplication made visible."""
    holders: dict[str, list[int]] = {}
    for version in versions:
        for sha in {f.sha256 for f in version.files}:
            holders.setdefault(sha, []).append(version.version)
    return holders


def _framework(version: ModelVersion) -> str:
    if version.framework is None:
        return ""
    return f"{version.framework.name} {version.framework.version}".strip()


class ShelfView:
    """The pages' documents for one shelf; safe to use from several threads."""

    def __init__(self, shelf: Shelf) -> None:
        self.shelf = shelf
        self._manifests: dict[tuple[str, int], ModelVersion] = {}
        self._lock = threading.Lock()

    # --- reading, remembered --------------------------------------------------------------

    def live_versions(self, name: str) -> list[ModelVersion]:
        """The live versions of a model, oldest first: one listing, then only unseen manifests."""
        numbers = [summary.version for summary in self.shelf.list_versions(name)]
        with self._lock:
            unseen = [n for n in numbers if (name, n) not in self._manifests]
        if len(unseen) > _READ_WHOLE_ABOVE:
            found = self.shelf.versions(name)
        else:
            found = [
                v for v in _parallel(lambda n: self._get(name, n), unseen, _READ_WHOLE_ABOVE) if v
            ]
        with self._lock:
            for version in found:
                self._manifests[(name, version.version)] = version
            return [self._manifests[(name, n)] for n in numbers if (name, n) in self._manifests]

    def _get(self, name: str, number: int) -> ModelVersion | None:
        try:
            return self.shelf.get(f"{name}:{number}")
        except ModelshelfError:
            return None  # deleted or damaged since the listing: the listing shows it next time

    # --- documents ------------------------------------------------------------------------

    def shelf_document(self) -> dict[str, Any]:
        """Every model with its latest version, aliases, framework, size and last change."""
        names = self.shelf.models()
        return {
            "kind": "shelf",
            "url": self.shelf.url,
            "models": _parallel(self._model_summary, names, _MODEL_WORKERS),
        }

    def _model_summary(self, name: str) -> dict[str, Any]:
        summary: dict[str, Any] = {"name": name}
        try:
            listing = self.shelf.list_versions(name)
            aliases = self.shelf.aliases(name)
            latest = self.shelf.get(name) if listing else None
        except ModelshelfError as exc:
            return {**summary, "error": str(exc)}
        changes = [a.set_at for a in aliases.values()] + [
            s.created_at for s in listing if s.created_at
        ]
        summary.update(
            versions=len(listing),
            aliases={alias: a.version for alias, a in aliases.items()},
            last_change=_time(max(changes)) if changes else None,
            latest=None,
        )
        if latest is not None:
            summary["latest"] = {
                "version": latest.version,
                "created_at": _time(latest.created_at),
                "created_by": latest.created_by,
                "framework": _framework(latest),
                "serializer": latest.serializer.name,
                "size": latest.total_size,
                "description": latest.description[:DESCRIPTION_IN_TABLE],
            }
        return summary

    def model_document(self, name: str) -> dict[str, Any]:
        """The versions table, the metric names, aliases, the alias timeline and deleted versions."""
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="modelshelf-ui") as pool:
            # The history is a record per event: read it while the manifests are read.
            history_future = pool.submit(self.shelf.history, name)
            aliases_future = pool.submit(self.shelf.aliases, name)
            versions = self.live_versions(name)
            history = history_future.result()
            aliases = aliases_future.result()
        by_version: dict[int, list[str]] = {}
        for alias, record in aliases.items():
            if record.version is not None:
                by_version.setdefault(record.version, []).append(alias)
        metrics: dict[str, None] = {}
        rows = []
        for v in versions:
            metrics.update(dict.fromkeys(v.metrics))
            rows.append(
                {
                    "version": v.version,
                    "created_at": _time(v.created_at),
                    "created_by": v.created_by,
                    "aliases": sorted(by_version.get(v.version, [])),
                    "framework": _framework(v),
                    "serializer": v.serializer.name,
                    "format": v.serializer.format,
                    "safe": v.serializer.safe,
                    "size": v.total_size,
                    "files": len(v.files),
                    "metrics": _plain(v.metrics),
                    "description": v.description[:DESCRIPTION_IN_TABLE],
                }
            )
        live = {v.version for v in versions}
        deletions = {
            e.version: e for e in history if e.action == "delete" and e.version is not None
        }
        highest = max([*live, *deletions, 0])
        deleted = [
            {
                "version": n,
                "deleted_at": _time(deletions[n].at) if n in deletions else None,
                "deleted_by": deletions[n].by if n in deletions else None,
            }
            for n in range(1, highest + 1)
            if n
            not in live  # numbers are never reused: a gap is a deletion (or a damaged manifest)
        ]
        timeline = [
            {
                "at": _time(e.at),
                "by": e.by,
                "alias": e.alias,
                "action": "set" if e.action == "alias_set" else "removed",
                "from": e.previous,
                "to": e.version if e.action == "alias_set" else None,
            }
            for e in history
            if e.action in ("alias_set", "alias_removed")
        ]
        return {
            "kind": "model",
            "url": self.shelf.url,
            "name": name,
            "metrics": list(metrics),
            "versions": rows,
            "deleted": deleted,
            "aliases": {
                alias: {
                    "version": a.version,
                    "set_at": _time(a.set_at),
                    "set_by": a.set_by,
                    "previous": a.previous,
                }
                for alias, a in aliases.items()
            },
            "timeline": timeline,
            "history": [
                {
                    "at": _time(e.at),
                    "by": e.by,
                    "action": e.action,
                    "version": e.version,
                    "alias": e.alias,
                    "previous": e.previous,
                }
                for e in history
            ],
        }

    def version_documents(self, name: str) -> dict[int, dict[str, Any]]:
        """Every live version's page document, with the files each shares with other versions."""
        versions = self.live_versions(name)
        aliases = self.shelf.aliases(name)
        holders = _holders(versions)
        return {v.version: self._version_document(v, holders, aliases) for v in versions}

    def version_document(self, name: str, number: int) -> dict[str, Any] | None:
        versions = self.live_versions(name)
        for v in versions:
            if v.version == number:
                return self._version_document(v, _holders(versions), self.shelf.aliases(name))
        return None

    def _version_document(
        self, version: ModelVersion, holders: dict[str, list[int]], aliases: dict[str, Any]
    ) -> dict[str, Any]:
        document = _plain(version)
        for entry in document["files"]:
            entry["shared_with"] = [
                n for n in holders.get(entry["sha256"], []) if n != version.version
            ]
        document.update(
            kind="version",
            url=self.shelf.url,
            ref=version.ref,
            aliases=sorted(alias for alias, a in aliases.items() if a.version == version.version),
        )
        return document
