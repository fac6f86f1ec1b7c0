"""Reading a shelf: its format record, manifests, aliases and listings, defensively.

Every record read from a key must say that it is the record of that key (a manifest its name and
number, an alias its name and alias); anything else on the shelf (a stray key, a folder that is
not a valid name, an unreadable record) is skipped and reported as a :class:`Problem`, never
trusted and never fatal for the rest of the shelf. Small records go through the local record
cache by etag, so listing again reads only what changed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from . import convert, layout
from .cache import Cache
from .errors import (
    AliasNotFound,
    AlreadyExists,
    InvalidName,
    InvalidRecord,
    KeyNotFound,
    ModelNotFound,
    StorageError,
    VersionNotFound,
)
from .records import Alias, ModelVersion, ShelfMarker, Tombstone
from .refs import check_alias, check_name, parse_ref, parse_version_file
from .storage import ObjectInfo, Storage
from .transfer import run_parallel
from .write_probe import check_conditional_writes

T = TypeVar("T")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen
class VersionSummary:
    """A live version as a listing knows it: no manifest was read."""

    name: str
    version: int
    created_at: dt.datetime | None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@attrs.frozen
class Problem:
    """One defect found on a shelf (by :meth:`Shelf.verify`, or skipped by a listing)."""

    ref: str
    path: str | None
    what: str


def format_versions(numbers: Iterable[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    numbers = sorted(numbers)
    ranges: list[str] = []
    start = previous = None
    for n in [*numbers, None]:
        if start is not None and (n is None or n != previous + 1):  # type: ignore[operator]
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if n is not None and start is None:
            start = n
        previous = n
    return ", ".join(ranges) or "none"


class Catalog:
    """What is on one shelf, read through its storage and the local record cache."""

    def __init__(self, storage: Storage, cache: Cache) -> None:
        self.storage = storage
        self.cache = cache
        self._format_checked = False

    @property
    def url(self) -> str:
        return self.storage.url

    @property
    def record_workers(self) -> int:
        """Parallel small-record reads: many for object stores (latency-bound), one locally."""
        return 1 if self.storage.local else 16

    # --- the format record -----------------------------------------------------------------

    def check_format(self, *, create: bool) -> None:
        """Refuse a shelf of a newer layout; before the first write, create the format record."""
        if create:
            # Before any write: a storage that ignores conditional writes would let concurrent
            # writers overwrite each other's versions (once per process per storage).
            check_conditional_writes(self.storage)
        if self._format_checked:
            return
        try:
            stored = self.storage.read(layout.FORMAT_KEY)
        except KeyNotFound:
            if not create:
                return  # an empty or not-yet-used shelf reads as empty
            record = ShelfMarker(format=layout.SHELF_FORMAT, created_at=now())
            try:
                self.storage.put_if_absent(layout.FORMAT_KEY, convert.to_json(record))
            except AlreadyExists:
                return self.check_format(create=create)
        else:
            record = convert.from_json(
                stored.data, ShelfMarker, source=f"{self.url}/{layout.FORMAT_KEY}"
            )
            if record.format > layout.SHELF_FORMAT:
                raise InvalidRecord(
                    f"shelf {self.url} uses layout format {record.format}, newer than this "
                    f"modelshelf understands ({layout.SHELF_FORMAT}): upgrade with `pip install -U modelshelf`"
                )
        self._format_checked = True

    # --- records ---------------------------------------------------------------------------

    def read_record(self, key: str, parse: Callable[[bytes], T], etag: str | None = None) -> T:
        """Read and parse a small record, served from the local record cache when its etag is known.

        Only records that parsed are cached, so a read cut short by the network cannot poison
        the cache.
        """
        if self.storage.local:
            return parse(self.storage.read(key).data)
        if etag is not None:
            cached = self.cache.get_record(self.url, key, etag)
            if cached is not None:
                return parse(cached)
        stored = self.storage.read(key)
        record = parse(stored.data)
        self.cache.put_record(self.url, key, stored.etag, stored.data)
        return record

    def manifest(
        self, name: str, version: int, etag: str | None = None
    ) -> ModelVersion | Tombstone:
        key = layout.version_key(name, version)
        return self.read_record(key, lambda data: self.parse_manifest(name, version, data), etag)

    def parse_manifest(self, name: str, version: int, data: bytes) -> ModelVersion | Tombstone:
        """A manifest read from the key of ``name:version``; it must say that it is that version."""
        key = layout.version_key(name, version)
        record = convert.manifest_from_json(data, source=f"{self.url}/{key}")
        if record.name != name or record.version != version:
            raise InvalidRecord(
                f"{self.url}/{key} claims to be {record.name}:{record.version}; the shelf is damaged"
            )
        return record

    def parse_alias(self, name: str, alias: str, data: bytes) -> Alias:
        """An alias record read from the key of ``name@alias``; it must say that it is that alias.

        Only the key says which alias a record is: a record copied to another key must never
        move, shadow or remove the alias it names.
        """
        key = layout.alias_key(name, alias)
        record = convert.from_json(data, Alias, source=f"{self.url}/{key}")
        if record.name != name or record.alias != alias:
            raise InvalidRecord(
                f"{self.url}/{key} claims to be {record.name}@{record.alias}; the shelf is damaged"
            )
        return record

    def read_alias(self, name: str, alias: str) -> Alias | None:
        try:
            stored = self.storage.read(layout.alias_key(name, alias))
        except KeyNotFound:
            return None
        return self.parse_alias(name, alias, stored.data)

    # --- listings --------------------------------------------------------------------------

    def warn_skipped(self, problems: Iterable[Problem]) -> None:
        """Listings skip damaged entries and go on; each one is worth one line to the user."""
        for problem in problems:
            warnings.warn(f"{self.url}: skipped {problem.ref}: {problem.what}", stacklevel=3)

    def scan_models(self) -> tuple[list[str], list[Problem]]:
        """Every valid model name with a ``_versions`` folder, sorted, and the folders skipped.

        A folder whose path is not a valid name (made by hand or by a stray tool, an object key
        with ``//``) is skipped without descending into it: no valid name lies below it.
        """
        self.check_format(create=False)
        found: list[str] = []
        problems: list[Problem] = []
        top = layout.MODELS_PREFIX
        pending = [top]
        while pending:
            prefix = pending.pop()
            for child in self.storage.list_prefixes(prefix):
                segment = child[len(prefix) : -1]
                if prefix != top and segment == "_versions":
                    found.append(prefix[len(top) : -1])
                elif prefix != top and segment.startswith("_"):
                    continue  # a model's own records (_aliases, _log): never part of a name
                else:
                    try:
                        check_name(child[len(top) : -1])
                    except InvalidName as exc:
                        problems.append(Problem(child, None, f"not a model folder: {exc}"))
                    else:
                        pending.append(child)
        return sorted(found), problems

    def models(self) -> list[str]:
        names, problems = self.scan_models()
        self.warn_skipped(problems)
        return names

    def scan_versions(
        self, name: str, problems: list[Problem] | None = None
    ) -> tuple[dict[int, ObjectInfo], set[int]]:
        """One listing: every claimed version number -> its manifest's listing entry, and the
        numbers flagged as deleted (``<n>.deleted``), without reading a manifest.

        A key that is not ``<ten ASCII digits>.json`` (or ``.deleted``) for a version from 1 to
        9,999,999,999 is never taken for a version: it is skipped, and added to ``problems`` when
        a list is given (listings warn about it, verify reports it).
        """
        manifests: dict[int, ObjectInfo] = {}
        deleted: set[int] = set()
        prefix = layout.versions_prefix(name)
        for info in self.storage.list(prefix):
            parsed = parse_version_file(info.key[len(prefix) :])
            if parsed is None:
                if problems is not None:
                    problems.append(
                        Problem(
                            name,
                            None,
                            f"stray key {info.key}: not a version manifest (<10 digits>.json)",
                        )
                    )
            elif parsed[1] == "json":
                manifests[parsed[0]] = info
            else:
                deleted.add(parsed[0])
        return manifests, deleted

    def version_numbers(self, name: str) -> dict[int, str]:
        """Every claimed version number of a model (live or deleted) -> its manifest etag."""
        return {number: info.etag for number, info in self.scan_versions(name)[0].items()}

    def versions(self, name: str) -> list[ModelVersion]:
        check_name(name)
        self.check_format(create=False)
        problems: list[Problem] = []
        manifests, deleted = self.scan_versions(name, problems)
        if not manifests:
            self.warn_skipped(problems)
            raise self.model_not_found(name)
        live = [(n, info.etag) for n, info in sorted(manifests.items()) if n not in deleted]

        def problem(
            number: int, exc: Exception
        ) -> Problem:  # damaged, or removed by hand since listed
            return Problem(f"{name}:{number}", None, f"unreadable manifest: {exc}")

        def read(item: tuple[int, str]) -> ModelVersion | Tombstone | Problem:
            try:
                return self.manifest(name, item[0], item[1])
            except (InvalidRecord, KeyNotFound) as exc:
                return problem(item[0], exc)

        records: list[object]
        if self.storage.local:
            records = list(run_parallel(read, live, max_workers=self.record_workers))
        else:  # object stores: a few index objects instead of a manifest per version
            from . import indexes

            records = indexes.read_versions(self, name, manifests, live, problem)
        self.warn_skipped([*problems, *(r for r in records if isinstance(r, Problem))])
        return [r for r in records if isinstance(r, ModelVersion)]

    def list_versions(self, name: str) -> list[VersionSummary]:
        check_name(name)
        self.check_format(create=False)
        problems: list[Problem] = []
        manifests, deleted = self.scan_versions(name, problems)
        self.warn_skipped(problems)
        if not manifests:
            raise self.model_not_found(name)
        return [
            VersionSummary(name, number, info.modified)
            for number, info in sorted(manifests.items())
            if number not in deleted
        ]

    def scan_aliases(self, name: str) -> tuple[dict[str, Alias], list[Problem]]:
        """The aliases set on a model, and the entries of its ``_aliases/`` that are not valid
        alias records of this model (stray keys, unreadable records, records naming another)."""
        prefix = layout.aliases_prefix(name)
        candidates: list[tuple[str, ObjectInfo]] = []
        problems: list[Problem] = []
        for info in self.storage.list(prefix):
            filename = info.key[len(prefix) :]
            try:
                if not filename.endswith(".json"):
                    raise InvalidName("not an alias record (<alias>.json)")
                candidates.append((check_alias(filename[: -len(".json")]), info))
            except InvalidName as exc:
                problems.append(Problem(name, None, f"stray key {info.key}: {exc}"))

        def read(item: tuple[str, ObjectInfo]) -> Alias | Problem | None:
            alias, info = item
            try:
                return self.read_record(
                    info.key, lambda data: self.parse_alias(name, alias, data), info.etag
                )
            except KeyNotFound:
                return None
            except InvalidRecord as exc:
                return Problem(name, None, f"unreadable alias {info.key}: {exc}")

        found = run_parallel(read, candidates, max_workers=self.record_workers)
        problems.extend(r for r in found if isinstance(r, Problem))
        aliases = sorted(
            (r for r in found if isinstance(r, Alias) and r.version is not None),
            key=lambda a: a.alias,
        )
        return {a.alias: a for a in aliases}, problems

    def aliases(self, name: str) -> dict[str, Alias]:
        check_name(name)
        found, problems = self.scan_aliases(name)
        self.warn_skipped(problems)
        return found

    # --- resolving references --------------------------------------------------------------

    def model_not_found(self, name: str) -> ModelNotFound:
        models = self.models()
        close = difflib.get_close_matches(name, models, n=3)
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif models:
            hint = f"models on this shelf: {', '.join(models[:10])}{' ...' if len(models) > 10 else ''}"
        else:
            hint = "the shelf has no models yet"
        return ModelNotFound(f"no model named {name!r} on shelf {self.url}: {hint}")

    def alias_not_found(self, name: str, alias: str) -> AliasNotFound:
        if not self.version_numbers(name):
            return AliasNotFound(str(self.model_not_found(name)))
        shown = ", ".join(sorted(self.aliases(name))) or "none"
        return AliasNotFound(f"{name} has no alias {alias!r} (aliases: {shown})")

    def resolve(self, ref: str) -> ModelVersion:
        """``name``, ``name:N``, ``name:latest`` or ``name@alias`` -> the live version."""
        parsed = parse_ref(ref)
        self.check_format(create=False)
        name = parsed.name
        if parsed.alias is not None:
            alias = self.read_alias(name, parsed.alias)
            if alias is None or alias.version is None:
                raise self.alias_not_found(name, parsed.alias)
            return self.live_version(name, alias.version, via=str(parsed))
        manifests, deleted = self.scan_versions(name)
        if not manifests:
            raise self.model_not_found(name)
        if parsed.version is not None:
            if parsed.version not in manifests:
                live = (n for n in manifests if n not in deleted)
                raise VersionNotFound(
                    f"{name} has no version {parsed.version}: existing versions are {format_versions(live)}"
                )
            return self.live_version(name, parsed.version, etag=manifests[parsed.version].etag)
        for number in sorted(set(manifests) - deleted, reverse=True):
            record = self.manifest(name, number, manifests[number].etag)
            if isinstance(record, ModelVersion):
                return record
        raise VersionNotFound(f"every version of {name} was deleted; upload a new one")

    def live_version(
        self, name: str, version: int, *, etag: str | None = None, via: str | None = None
    ) -> ModelVersion:
        try:
            record = self.manifest(name, version, etag)
        except KeyNotFound:
            raise VersionNotFound(f"{via or name}: version {version} does not exist") from None
        if isinstance(record, Tombstone):
            raise VersionNotFound(
                f"{name}:{version} was deleted at {record.deleted_at:%Y-%m-%d %H:%M} UTC by "
                f"{record.deleted_by}" + (f" (resolved from {via})" if via else "")
            )
        return record

    def holds(self, key: str, data: bytes, attempts: int = 4) -> bool:
        """True if ``key`` holds exactly ``data``: a write whose answer was lost had landed.

        Records carry their creation time to the microsecond and their author, so equal bytes
        mean this writer's own earlier attempt, never another's write.
        """
        for attempt in range(attempts):
            try:
                return self.storage.read(key).data == data
            except KeyNotFound:
                return False
            except StorageError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        return False
