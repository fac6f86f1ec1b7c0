"""The registry protocol, built on the few primitives of a :class:`~modelshelf.storage.Storage`.

Keys below the shelf root::

    .modelshelf.json                            shelf marker (create-only)
    blobs/sha256/<aa>/<64 hex>                  file contents, content-addressed, immutable
    models/<name>/_versions/<0000000042>.json   version manifest (create-only; tombstone on delete)
    models/<name>/_aliases/<alias>.json         alias pointer (compare-and-swap)
    models/<name>/_log/<time>-<random>.json     append-only event log

Safety under concurrent writers comes from the storage's create-only and compare-and-swap writes:
a version number is claimed by creating its manifest, and a manifest is written only after all of
its blobs exist, so no reader ever sees a half-published version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import hashlib
import json
import math
import os
import random
import re
import secrets
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from . import convert
from .cache import Cache
from .errors import (
    AliasNotFound,
    AlreadyExists,
    ConflictError,
    IntegrityError,
    InvalidName,
    InvalidRecord,
    KeyNotFound,
    ModelNotFound,
    ModelshelfError,
    NoSerializer,
    PreconditionFailed,
    StorageError,
    UnknownScheme,
    UntrustedFormat,
    VersionNotFound,
)
from .lineage import collect_lineage, current_user
from .plugins import get_registry
from .records import (
    Alias,
    Event,
    FileEntry,
    FrameworkInfo,
    ModelVersion,
    SerializerInfo,
    ShelfMarker,
    Tombstone,
)
from .refs import (
    MAX_VERSION,
    Ref,
    check_alias,
    check_file_path,
    check_name,
    check_version,
    parse_ref,
    parse_version_file,
)
from .serializers import SavedModel, Serializer, choose
from .storage import ObjectInfo, Storage
from .leases import HeldLease, default_ttl, expired_leases, live_leases, mentioned_blobs, wait_for_gc_runs
from .terminal import install_hint, serializer_package
from .transfer import Progress, counted, hash_file, run_parallel
from .write_probe import check_conditional_writes

T = TypeVar("T")
MARKER_KEY = ".modelshelf.json"
SHELF_FORMAT = 1
#: Storage plugins users are told to install for well-known schemes.
KNOWN_STORAGE_PLUGINS = {
    "s3": "modelshelf-s3",
    "az": "modelshelf-azure",
    "azure": "modelshelf-azure",
    "gs": "modelshelf-gcs",
    "gcs": "modelshelf-gcs",
}
#: How long an unreferenced blob is kept by ``gc`` (an upload in flight has not written its
#: manifest yet). ``MODELSHELF_GC_GRACE`` overrides it, in seconds.
DEFAULT_GC_GRACE = dt.timedelta(hours=24)
#: A grace period longer than this (about 100 years) is surely a mistake.
_MAX_GRACE_SECONDS = 100 * 365 * 86400.0
_MISSING_BLOB = "blob is missing"
#: Blobs deleted between two checks that the gc run record is still fresh.
_GC_BATCH = 256
_MAX_WRITE_ATTEMPTS = 1000
#: Reads spent finding out whether a write whose answer was lost had landed.
_HOLDS_ATTEMPTS = 4


def default_url() -> str:
    return os.environ.get("MODELSHELF_URL") or str(Path("~/.modelshelf").expanduser())


def scheme_of(url: str) -> str:
    if "://" in url:
        return url.split("://", 1)[0].lower()
    if url.startswith("file:"):
        return "file"
    return "file"  # a plain path


def open(url: str | None = None, *, cache: Cache | str | Path | None = None, **options: Any) -> Shelf:
    """Open the shelf at ``url`` (default ``MODELSHELF_URL``, else ``~/.modelshelf``).

    ``options`` go to the storage plugin (credentials, endpoint, region...). ``cache`` is the
    download cache directory (default ``MODELSHELF_CACHE``, else ``~/.cache/modelshelf``).
    """
    url = url or default_url()
    if not isinstance(url, str):
        url = str(url)
    scheme = scheme_of(url)
    storages = get_registry().storages()
    entry = storages.get(scheme)
    if entry is None:
        hint = KNOWN_STORAGE_PLUGINS.get(scheme)
        if hint:
            raise UnknownScheme(
                f"no storage plugin handles {scheme}:// URLs: install it with `pip install {hint}`"
            )
        known = ", ".join(f"{s}://" for s in sorted(storages))
        raise UnknownScheme(
            f"no storage plugin handles {scheme}:// URLs (installed: {known}); "
            "check the URL or install the plugin for this storage"
        )
    storage = entry.factory(url, **options)
    if not isinstance(cache, Cache):
        cache = Cache(cache)
    return Shelf(storage, cache=cache)


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
    """One defect found by :meth:`Shelf.verify`."""

    ref: str
    path: str | None
    what: str


@attrs.frozen
class GcReport:
    """What one ``gc`` run removed (or, in a dry run, would remove) and what it kept."""

    removed: tuple[str, ...]
    removed_bytes: int
    #: Unreferenced blobs younger than the grace period.
    kept_recent: int
    referenced: int
    dry_run: bool
    #: Blobs kept because an upload in progress will reference them.
    in_flight: int = 0
    #: Manifests that could not be parsed; every sha256 they mention was kept.
    unreadable: tuple[str, ...] = ()
    #: The run stopped deleting because it could not keep its run record fresh; run it again.
    stopped_early: bool = False


def _gc_grace(grace: dt.timedelta | None) -> dt.timedelta:
    """``grace``, else ``MODELSHELF_GC_GRACE`` seconds, else the default; checked."""
    if grace is None:
        configured = os.environ.get("MODELSHELF_GC_GRACE")
        if not configured:
            return DEFAULT_GC_GRACE
        try:
            seconds = float(configured)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_GRACE_SECONDS:
            raise ModelshelfError(
                f"MODELSHELF_GC_GRACE must be a number of seconds from 0 to {_MAX_GRACE_SECONDS:.0f}, "
                f"got {configured!r}"
            )
        return dt.timedelta(seconds=seconds)
    if grace < dt.timedelta(0):
        raise ModelshelfError("the gc grace period cannot be negative")
    return grace


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _format_versions(numbers: Iterable[int]) -> str:
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


def _check_json(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelshelfError(f"{what} must be a dict, got {type(value).__name__}")
    value = dict(value)
    for key in value:
        if not isinstance(key, str):
            raise ModelshelfError(f"{what} keys must be strings, got {key!r}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelshelfError(f"{what} must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ModelshelfError(f"{what} is nested too deeply to store as JSON") from None
    return value


def _check_metrics(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelshelfError(f"metrics must be a dict, got {type(value).__name__}")
    metrics = dict(value)
    for key, number in metrics.items():
        if not isinstance(key, str):
            raise ModelshelfError(f"metric names must be strings, got {key!r}")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ModelshelfError(f"metric {key!r} must be a finite number, got {number!r}")
    return {k: float(v) for k, v in metrics.items()}


class Shelf:
    """A model registry on one storage root. Create it with :func:`modelshelf.open`."""

    def __init__(self, storage: Storage, *, cache: Cache | None = None) -> None:
        self.storage = storage
        self.cache = cache or Cache()
        self._marker_checked = False
        self._next_version: dict[str, int] = {}
        #: Lifetime of the leases this shelf's uploads and gc runs hold (see :mod:`modelshelf.leases`).
        self.lease_ttl = default_ttl()
        #: How often an upload looks again whether a running gc has finished.
        self.lease_poll = 0.25

    @property
    def url(self) -> str:
        return self.storage.url

    @property
    def _record_workers(self) -> int:
        """Parallel small-record reads: many for object stores (latency-bound), one locally."""
        return 1 if self.storage.local else 16

    def __repr__(self) -> str:
        return f"<Shelf {self.storage.describe()}>"

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- keys ------------------------------------------------------------------------------

    @staticmethod
    def _blob_key(sha256: str) -> str:
        return f"blobs/sha256/{sha256[:2]}/{sha256}"

    @staticmethod
    def _versions_prefix(name: str) -> str:
        return f"models/{name}/_versions/"

    def _version_key(self, name: str, version: int) -> str:
        return f"{self._versions_prefix(name)}{version:010d}.json"

    @staticmethod
    def _alias_key(name: str, alias: str) -> str:
        return f"models/{name}/_aliases/{alias}.json"

    @staticmethod
    def _log_prefix(name: str) -> str:
        return f"models/{name}/_log/"

    # --- the shelf marker ------------------------------------------------------------------

    def _check_marker(self, *, create: bool) -> None:
        if create:
            # Before any write: a storage that ignores conditional writes would let concurrent
            # writers overwrite each other's versions (once per process per storage; see module).
            check_conditional_writes(self.storage)
        if self._marker_checked:
            return
        try:
            stored = self.storage.read(MARKER_KEY)
        except KeyNotFound:
            if not create:
                return  # an empty or not-yet-used shelf reads as empty
            marker = ShelfMarker(format=SHELF_FORMAT, created_at=_now())
            try:
                self.storage.put_if_absent(MARKER_KEY, convert.to_json(marker))
            except AlreadyExists:
                return self._check_marker(create=create)
        else:
            marker = convert.from_json(stored.data, ShelfMarker, source=f"{self.url}/{MARKER_KEY}")
            if marker.format > SHELF_FORMAT:
                raise InvalidRecord(
                    f"shelf {self.url} uses layout format {marker.format}, newer than this "
                    f"modelshelf understands ({SHELF_FORMAT}): upgrade with `pip install -U modelshelf`"
                )
        self._marker_checked = True

    # --- cached record reads ---------------------------------------------------------------

    def _read_record(self, key: str, parse: Callable[[bytes], T], etag: str | None = None) -> T:
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

    def _manifest(self, name: str, version: int, etag: str | None = None) -> ModelVersion | Tombstone:
        key = self._version_key(name, version)
        return self._read_record(key, lambda data: self._parse_manifest(name, version, data), etag)

    def _parse_manifest(self, name: str, version: int, data: bytes) -> ModelVersion | Tombstone:
        """A manifest read from the key of ``name:version``; it must say that it is that version."""
        key = self._version_key(name, version)
        record = convert.manifest_from_json(data, source=f"{self.url}/{key}")
        if record.name != name or record.version != version:
            raise InvalidRecord(
                f"{self.url}/{key} claims to be {record.name}:{record.version}; the shelf is damaged"
            )
        return record

    def _scan_versions(
        self, name: str, problems: list[Problem] | None = None
    ) -> tuple[dict[int, ObjectInfo], set[int]]:
        """One listing: every claimed version number -> its manifest's listing entry, and the
        numbers known to be deleted (their ``<n>.deleted`` marker), without reading a manifest.

        A key that is not ``<ten ASCII digits>.json`` (or ``.deleted``) for a version from 1 to
        9,999,999,999 is never taken for a version: it is skipped, and added to ``problems`` when
        a list is given (listings warn about it, verify reports it, gc can refuse to sweep).
        """
        manifests: dict[int, ObjectInfo] = {}
        deleted: set[int] = set()
        prefix = self._versions_prefix(name)
        for info in self.storage.list(prefix):
            parsed = parse_version_file(info.key[len(prefix) :])
            if parsed is None:
                if problems is not None:
                    problems.append(
                        Problem(name, None, f"stray key {info.key}: not a version manifest (<10 digits>.json)")
                    )
            elif parsed[1] == "json":
                manifests[parsed[0]] = info
            else:
                deleted.add(parsed[0])
        return manifests, deleted

    def _version_numbers(self, name: str) -> dict[int, str]:
        """Every claimed version number of a model (live or deleted) -> its manifest etag."""
        return {number: info.etag for number, info in self._scan_versions(name)[0].items()}

    def _marker_key(self, name: str, version: int) -> str:
        return f"{self._versions_prefix(name)}{version:010d}.deleted"

    # --- listing ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of every model with at least one claimed version, sorted.

        Folders that are not valid model names are skipped with a warning (see :meth:`_scan_models`).
        """
        names, problems = self._scan_models()
        self._warn_skipped(problems)
        return names

    def _scan_models(self) -> tuple[list[str], list[Problem]]:
        """Every valid model name with a ``_versions`` folder, sorted, and the folders skipped.

        A folder whose path is not a valid name (made by hand or by a stray tool, an object key
        with ``//``) is skipped without descending into it: no valid name lies below it. Callers
        that must not act on a partial view of the shelf (gc) check that the problems are empty.
        """
        self._check_marker(create=False)
        found: list[str] = []
        problems: list[Problem] = []
        pending = ["models/"]
        while pending:
            prefix = pending.pop()
            for child in self.storage.list_prefixes(prefix):
                segment = child[len(prefix) : -1]
                if prefix != "models/" and segment == "_versions":
                    found.append(prefix[len("models/") : -1])
                elif prefix != "models/" and segment.startswith("_"):
                    continue  # a model's own records (_aliases, _log): never part of a name
                else:
                    try:
                        check_name(child[len("models/") : -1])
                    except InvalidName as exc:
                        problems.append(Problem(child, None, f"not a model folder: {exc}"))
                    else:
                        pending.append(child)
        return sorted(found), problems

    def _warn_skipped(self, problems: Iterable[Problem]) -> None:
        """Listings skip damaged entries and go on; each one is worth one line to the user."""
        for problem in problems:
            warnings.warn(f"{self.url}: skipped {problem.ref}: {problem.what}", stacklevel=3)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every live version of a model, oldest first, with its whole manifest.

        Manifests are read in parallel and kept in the local record cache, so listing again reads
        only what changed. :meth:`list_versions` answers from one listing without reading any.
        """
        check_name(name)
        self._check_marker(create=False)
        problems: list[Problem] = []
        manifests, deleted = self._scan_versions(name, problems)
        if not manifests:
            self._warn_skipped(problems)
            raise self._model_not_found(name)
        live = [(n, info.etag) for n, info in sorted(manifests.items()) if n not in deleted]

        def read(item: tuple[int, str]) -> ModelVersion | Tombstone | Problem:
            try:
                return self._manifest(name, item[0], item[1])
            except (InvalidRecord, KeyNotFound) as exc:  # damaged, or removed by hand since listed
                return Problem(f"{name}:{item[0]}", None, f"unreadable manifest: {exc}")

        records = run_parallel(read, live, max_workers=self._record_workers)
        self._warn_skipped([*problems, *(r for r in records if isinstance(r, Problem))])
        return [r for r in records if isinstance(r, ModelVersion)]

    def list_versions(self, name: str) -> list[VersionSummary]:
        """Version numbers and creation times of a model's live versions, from one listing.

        The cheap way to enumerate thousands of versions on object storage (a request per 1,000
        versions); use :meth:`versions` or :meth:`get` for metadata.
        """
        check_name(name)
        self._check_marker(create=False)
        problems: list[Problem] = []
        manifests, deleted = self._scan_versions(name, problems)
        self._warn_skipped(problems)
        if not manifests:
            raise self._model_not_found(name)
        return [
            VersionSummary(name, number, info.modified)
            for number, info in sorted(manifests.items())
            if number not in deleted
        ]

    def _model_not_found(self, name: str) -> ModelNotFound:
        models = self.models()
        close = difflib.get_close_matches(name, models, n=3)
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif models:
            hint = f"models on this shelf: {', '.join(models[:10])}{' ...' if len(models) > 10 else ''}"
        else:
            hint = "the shelf has no models yet"
        return ModelNotFound(f"no model named {name!r} on shelf {self.url}: {hint}")

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name``, ``name:N``, ``name:latest`` or ``name@alias`` to a version."""
        parsed = parse_ref(ref)
        self._check_marker(create=False)
        name = parsed.name
        if parsed.alias is not None:
            alias = self._read_alias(name, parsed.alias)
            if alias is None or alias.version is None:
                raise self._alias_not_found(name, parsed.alias)
            return self._live_version(name, alias.version, via=str(parsed))
        manifests, deleted = self._scan_versions(name)
        if not manifests:
            raise self._model_not_found(name)
        if parsed.version is not None:
            if parsed.version not in manifests:
                live = (n for n in manifests if n not in deleted)
                raise VersionNotFound(
                    f"{name} has no version {parsed.version}: existing versions are {_format_versions(live)}"
                )
            return self._live_version(name, parsed.version, etag=manifests[parsed.version].etag)
        for number in sorted(set(manifests) - deleted, reverse=True):
            record = self._manifest(name, number, manifests[number].etag)
            if isinstance(record, ModelVersion):
                return record
        raise VersionNotFound(f"every version of {name} was deleted; upload a new one")

    def _live_version(self, name: str, version: int, *, etag: str | None = None, via: str | None = None) -> ModelVersion:
        try:
            record = self._manifest(name, version, etag)
        except KeyNotFound:
            raise VersionNotFound(f"{via or name}: version {version} does not exist") from None
        if isinstance(record, Tombstone):
            raise VersionNotFound(
                f"{name}:{version} was deleted at {record.deleted_at:%Y-%m-%d %H:%M} UTC by "
                f"{record.deleted_by}" + (f" (resolved from {via})" if via else "")
            )
        return record

    # --- upload ----------------------------------------------------------------------------

    def upload(
        self,
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
    ) -> ModelVersion:
        """Publish ``obj`` (a model object, a file, a directory or a list of paths) as a new version.

        Every file is hashed and stored once as a content-addressed blob; then the manifest is
        created as version ``max + 1``. ``extra_files`` are stored beside the model under
        ``extra/``. ``options`` go to the serializer's ``save``.
        """
        check_name(name)
        metadata = _check_json(metadata, "metadata")
        metrics_ = _check_metrics(metrics)
        params = _check_json(params, "params")
        tags_ = {str(k): str(v) for k, v in _check_json(tags, "tags").items()}
        if not isinstance(description, str):
            raise ModelshelfError("description must be a string")
        chosen = self._choose_serializer(obj, serializer)
        entry = get_registry().serializers()[chosen.name]
        self._check_marker(create=True)

        with tempfile.TemporaryDirectory(prefix="modelshelf-") as scratch:
            in_place = chosen.files(obj)
            if in_place is not None:
                local = dict(in_place)
                describe = getattr(chosen, "describe", None)
                saved = describe(obj) if describe else SavedModel(chosen.framework, "")
            else:
                folder = Path(scratch) / "model"
                folder.mkdir()
                saved = chosen.save(obj, folder, **dict(options or {}))
                from .default_plugins.files import collect_files

                local = collect_files([folder])
            if extra_files is not None:
                self._add_extra_files(local, extra_files)
            files, blobs = self._hash_files(local)

            framework = (
                None if chosen.name == "files" else FrameworkInfo(saved.framework, saved.framework_version)
            )
            packages = {entry.distribution: entry.distribution_version}
            if framework is not None:
                packages.setdefault(framework.name, framework.version)
            draft = ModelVersion(
                name=name,
                version=1,
                created_at=_now(),
                created_by=current_user(),
                serializer=SerializerInfo(
                    name=chosen.name,
                    distribution=entry.distribution,
                    distribution_version=entry.distribution_version,
                    format=chosen.format,
                    safe=chosen.safe,
                    details=_check_json(saved.details, "serializer details"),
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
                signature=_check_json(saved.signature, "signature") if saved.signature else None,
            )
            return self.publish(draft, blobs)

    def publish(self, draft: ModelVersion, blobs: Mapping[str, Path]) -> ModelVersion:
        """Publish a manifest as the next version of ``draft.name``; return it with its number.

        ``blobs`` maps the sha256 of every file to a local copy, used to (re-)upload any blob the
        shelf lacks. This is the common end of uploads, copies and imports; most users want
        :meth:`upload`.
        """
        return self._publish_counting(draft, blobs)[0]

    def _publish_counting(self, draft: ModelVersion, blobs: Mapping[str, Path]) -> tuple[ModelVersion, int]:
        """:meth:`publish`, also returning how many bytes of blobs were sent."""
        check_name(draft.name)
        self._check_marker(create=True)
        missing = [f.sha256 for f in draft.files if f.sha256 not in blobs]
        if missing:
            raise ModelshelfError(f"no local copy of blob {missing[0]} given to publish {draft.name}")
        size = len(convert.to_json(draft))
        if size > convert.MAX_RECORD_BYTES // 2:  # half: readers refuse records over the limit
            raise ModelshelfError(
                f"the manifest of {draft.name} would be {size} bytes (limit {convert.MAX_RECORD_BYTES // 2}): "
                "metadata, params and signatures describe a model; store large data as files "
                "(extra_files=...)"
            )
        needed = {f.sha256: blobs[f.sha256] for f in draft.files}
        sizes = {f.sha256: f.size for f in draft.files}
        # The lease keeps gc away from these blobs until the manifest exists (see leases.py).
        with HeldLease(self.storage, "upload", ttl=self.lease_ttl, name=draft.name, blobs=needed) as lease:
            sweep_seen = self._gc_running(lease)
            sent = self._upload_blobs(needed, sizes)
            published: ModelVersion | None = None
            while True:
                if sweep_seen:
                    wait_for_gc_runs(lease, poll=self.lease_poll)
                    sent += self._store_missing_blobs(needed, sizes)
                if published is None:
                    published = self._publish(draft, lease)
                if published is not None and lease.fresh():
                    break
                # The lease may have lapsed (the process stalled) and a sweep taken it for dead:
                # take a new one, wait out running sweeps and store again whatever they took,
                # before publishing or, if the manifest is already out, before reporting it.
                lease.renew()
                sweep_seen = True
        self._log(draft.name, "upload", version=published.version)
        get_registry().broadcast("modelshelf_version_published", shelf=self, version=published)
        return published, sent

    def _choose_serializer(self, obj: Any, name: str | None) -> Serializer:
        serializers = get_registry().serializers()
        if name is not None:
            entry = serializers.get(name)
            if entry is None:
                raise NoSerializer(
                    f"no serializer named {name!r} is installed (installed: "
                    f"{', '.join(sorted(serializers))})"
                )
            return entry.serializer
        return choose(obj, (e.serializer for e in serializers.values()))

    @staticmethod
    def _add_extra_files(local: dict[str, Path], extra_files: Iterable[str | os.PathLike[str]]) -> None:
        from .default_plugins.files import collect_files

        if isinstance(extra_files, (str, os.PathLike)):
            extra_files = [extra_files]
        extras = collect_files([Path(p) for p in extra_files])
        for relative, path in extras.items():
            key = check_file_path(f"extra/{relative}")
            if key in local:
                raise ModelshelfError(f"extra file {relative!r} clashes with a model file {key!r}")
            local[key] = path

    @staticmethod
    def _hash_files(local: Mapping[str, Path]) -> tuple[list[FileEntry], dict[str, Path]]:
        """Hash every file: the manifest entries, and one local copy per distinct content."""
        items = sorted(local.items())
        hashed = run_parallel(lambda item: (item[0], item[1], *hash_file(item[1])), items)
        files = [FileEntry(path, sha, size) for path, _, sha, size in hashed]
        return files, {sha: p for _, p, sha, _ in hashed}

    def _gc_running(self, lease: HeldLease) -> bool:
        return any(True for _ in live_leases(self.storage, "gc", lease.server_now))

    def _upload_blobs(self, blobs: Mapping[str, Path], sizes: Mapping[str, int]) -> int:
        """Store the blobs the shelf does not have yet, verified; return the bytes sent.

        A blob already present with the right size is re-used (identical content is stored once).
        """
        with Progress(sum(sizes.values()), "upload") as progress:

            def put(sha: str) -> int:
                key = self._blob_key(sha)
                existing = self.storage.stat(key)
                if existing is not None and existing.size == sizes[sha]:
                    self.storage.touch(key)  # restart the grace period of a blob we now reference
                    progress.update(sizes[sha])
                    return 0
                self.storage.put_blob(key, blobs[sha], sha, sizes[sha])
                progress.update(sizes[sha])
                return sizes[sha]

            return sum(run_parallel(put, list(blobs)))

    def _store_missing_blobs(self, blobs: Mapping[str, Path], sizes: Mapping[str, int]) -> int:
        """Check every blob again and store those a sweep deleted meanwhile; return the bytes sent."""

        def check(sha: str) -> int:
            key = self._blob_key(sha)
            existing = self.storage.stat(key)
            if existing is not None and existing.size == sizes[sha]:
                return 0
            self.storage.put_blob(key, blobs[sha], sha, sizes[sha])
            return sizes[sha]

        return sum(run_parallel(check, sorted(blobs)))

    def _publish(self, draft: ModelVersion, lease: HeldLease) -> ModelVersion | None:
        """Claim the next version number by creating its manifest; retry on a lost race.

        Returns ``None``, having written nothing, as soon as ``lease`` is no longer provably fresh.
        """
        # A writer publishing repeatedly tries the number after its last one without listing
        # (create-only makes a stale guess safe); otherwise, or after losing, it lists.
        candidate = self._next_version.get(draft.name) or max(self._version_numbers(draft.name), default=0) + 1
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            if candidate > MAX_VERSION:
                raise ModelshelfError(
                    f"{draft.name} already has a version numbered {MAX_VERSION:,}, the largest a version "
                    "can have: upload under another name (if that version was not published on purpose, "
                    "someone wrote it into the shelf directly: delete it and check who can write there)"
                )
            if not lease.fresh():
                return None
            record = attrs.evolve(draft, version=candidate, created_at=_now())
            key = self._version_key(draft.name, candidate)
            data = convert.to_json(record)
            try:
                self.storage.put_if_absent(key, data)
            except AlreadyExists:
                if not self._holds(key, data):
                    # Someone took this number. Re-list now and then: under heavy contention a
                    # writer that only counts up would lag behind the others.
                    if attempt % 8 == 7:
                        candidate = max(self._version_numbers(draft.name), default=candidate) + 1
                    else:
                        candidate += 1
                    continue
            except StorageError:
                if not self._holds(key, data):
                    raise
            self._next_version[draft.name] = candidate + 1
            return record
        raise ConflictError(
            f"could not claim a version number for {draft.name} after {_MAX_WRITE_ATTEMPTS} attempts"
        )

    def _holds(self, key: str, data: bytes) -> bool:
        """True if ``key`` holds exactly ``data``: a create whose answer was lost had landed.

        Manifests carry their creation time to the microsecond and their author, so equal bytes
        mean this writer's own earlier attempt, never another upload.
        """
        for attempt in range(_HOLDS_ATTEMPTS):
            try:
                return self.storage.read(key).data == data
            except KeyNotFound:
                return False
            except StorageError:
                if attempt == _HOLDS_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        return False

    def _log(self, name: str, action: str, **fields: Any) -> Event:
        """Append an event. What it records has already happened: a failure here is a warning."""
        event = Event(name=name, action=action, at=_now(), by=current_user(), **fields)
        key = f"{self._log_prefix(name)}{event.at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(6)}.json"
        try:
            self.storage.put_if_absent(key, convert.to_json(event))
        except AlreadyExists:
            pass  # the key is random: only our own retried write can have created it
        except ModelshelfError as exc:
            warnings.warn(
                f"{name}: the {action} succeeded but its history entry could not be written ({exc})",
                stacklevel=3,
            )
        return event

    # --- download and load -----------------------------------------------------------------

    def fetch(self, version: ModelVersion, files: Iterable[FileEntry] | None = None) -> None:
        """Make sure every blob of ``version`` is in the local cache, verified while streaming.

        Blobs already cached are not re-hashed here: every use of a cached blob verifies it (see
        :mod:`modelshelf.cache`). ``files`` fetches those blobs again even when cached (the cache
        evicted a bad copy).
        """
        if files is not None:
            missing = {f.sha256: f for f in files}
        else:
            missing = {f.sha256: f for f in version.files if not self.cache.has(f)}
        for f in version.files:
            if f.sha256 not in missing:
                self.cache.touch(f.sha256)
        total = sum(f.size for f in missing.values())
        with Progress(total, f"download {version.ref}") as progress:

            def get(entry: FileEntry) -> None:
                key = self._blob_key(entry.sha256)
                try:
                    chunks = self.storage.read_stream(key)
                except KeyNotFound:
                    raise IntegrityError(
                        f"{version.ref}: blob of {entry.path!r} ({entry.sha256[:12]}...) is missing "
                        f"from shelf {self.url}; run `modelshelf verify`"
                    ) from None
                self.cache.insert(entry, counted(chunks, progress), f"{version.ref}/{entry.path}")

            run_parallel(get, missing.values())

    def download(self, ref: str, dest: str | os.PathLike[str], *, link: bool = False) -> Path:
        """Materialise a version's files into ``dest`` (created if needed); return ``dest``.

        Files are independent copies, hashed while copied from the cache; none appears in
        ``dest`` before all of them matched. ``link=True`` hardlinks them from the cache instead
        (no extra disk space, read-only like the cache, each hashed before it is exposed); never
        edit such files in place: that changes the cached blob, which its next use then evicts
        and downloads again.
        """
        version = self.get(ref)
        dest_path = Path(dest)
        if dest_path.exists() and not dest_path.is_dir():
            raise ModelshelfError(f"download destination {dest_path} exists and is not a directory")
        self.fetch(version)  # a bad shelf copy fails here, before dest is touched
        self.cache.materialize(
            version.files, dest_path, link=link, what=version.ref,
            refill=lambda entry: self.fetch(version, (entry,)),
        )
        return dest_path

    def load(self, ref: str, *, trust: bool = False, **options: Any) -> Any:
        """Load a version back into memory with the serializer that saved it.

        Versions saved in a format whose loading can execute code (pickle, joblib...) need
        ``trust=True``; the check happens before anything is downloaded.
        """
        version = self.get(ref)
        info = version.serializer
        entry = get_registry().serializers().get(info.name)
        if entry is None:
            raise NoSerializer(
                f"{version.ref} was saved by serializer {info.name!r} from "
                f"{serializer_package(info.distribution)} {info.distribution_version!r}: "
                f"{install_hint(info.distribution)}"
            )
        serializer = entry.serializer
        if not (serializer.safe and info.safe) and not trust:
            raise UntrustedFormat(
                f"{version.ref} is stored as {info.format} ({info.name}), and loading it can run "
                "code stored in the files: load it with trust=True only if you "
                "trust whoever uploaded it"
            )
        from .default_plugins.files import FilesSerializer

        self.fetch(version)

        def refill(file: FileEntry) -> None:
            self.fetch(version, (file,))

        if isinstance(serializer, FilesSerializer):
            # It returns the files themselves: hand out a private, verified copy, never the
            # shared cache's inodes (an in-place edit would reach every later load).
            private = self.cache.private_copy(version.files, refill=refill, what=version.ref)
            return serializer.load(private, details=info.details, trust=trust, **options)
        digest = hashlib.sha256(
            "\n".join(f"{f.path}\0{f.sha256}" for f in version.files).encode()
        ).hexdigest()
        directory = self.cache.snapshot(digest, version.files, refill=refill, what=version.ref)
        loaded = serializer.load(directory, details=info.details, trust=trust, **options)
        if isinstance(loaded, os.PathLike):
            returned, directory = Path(loaded).absolute(), directory.absolute()
            if returned == directory or directory in returned.parents:
                # Another serializer that returns its files: the same private copy rule.
                private = self.cache.private_copy(version.files, refill=refill, what=version.ref)
                return private / returned.relative_to(directory)
        return loaded

    # --- aliases ---------------------------------------------------------------------------

    def _read_alias(self, name: str, alias: str) -> Alias | None:
        key = self._alias_key(name, alias)
        try:
            stored = self.storage.read(key)
        except KeyNotFound:
            return None
        return self._parse_alias(name, alias, stored.data)

    def _parse_alias(self, name: str, alias: str, data: bytes) -> Alias:
        """An alias record read from the key of ``name@alias``; it must say that it is that alias.

        Only the key says which alias a record is: a record copied to another key must never
        move, shadow or remove the alias it names.
        """
        key = self._alias_key(name, alias)
        record = convert.from_json(data, Alias, source=f"{self.url}/{key}")
        if record.name != name or record.alias != alias:
            raise InvalidRecord(
                f"{self.url}/{key} claims to be {record.name}@{record.alias}; the shelf is damaged"
            )
        return record

    def _alias_not_found(self, name: str, alias: str) -> AliasNotFound:
        if not self._version_numbers(name):
            return AliasNotFound(str(self._model_not_found(name)))
        shown = ", ".join(sorted(self.aliases(name))) or "none"
        return AliasNotFound(f"{name} has no alias {alias!r} (aliases: {shown})")

    def _swap_alias(self, name: str, alias: str, version: int | None) -> tuple[Alias, Alias | None]:
        key = self._alias_key(name, alias)
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            try:
                stored = self.storage.read(key)
                current = self._parse_alias(name, alias, stored.data)
                etag: str | None = stored.etag
            except KeyNotFound:
                current, etag = None, None
            if version is None and (current is None or current.version is None):
                raise self._alias_not_found(name, alias)
            record = Alias(
                name=name, alias=alias, version=version, set_at=_now(), set_by=current_user(),
                previous=current.version if current else None,
            )
            data = convert.to_json(record)
            try:
                if etag is None:
                    self.storage.put_if_absent(key, data)
                else:
                    self.storage.put_if_match(key, data, etag)
                return record, current
            except (AlreadyExists, PreconditionFailed):
                if self._holds(key, data):  # a retry after a lost answer met our own write
                    return record, current
                if etag is None and attempt >= 3 and self.storage.stat(key) is None:
                    # Create-only says the key exists, yet it cannot be read or stat'ed: something
                    # that is not an object (a directory, say) sits at the alias's place.
                    raise InvalidRecord(
                        f"{self.url}/{key} exists but is not a readable alias record; the shelf is "
                        "damaged there: remove that entry by hand"
                    )
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
            except StorageError:
                if self._holds(key, data):
                    return record, current
                raise
        raise ConflictError(f"could not update alias {name}@{alias}: too many concurrent writers")

    def _undo_alias(self, name: str, alias: str, ours: Alias, before: Alias | None) -> None:
        """Put an alias back as it was, unless someone has moved it since ``ours`` was written."""
        key = self._alias_key(name, alias)
        try:
            stored = self.storage.read(key)
        except KeyNotFound:
            return
        if self._parse_alias(name, alias, stored.data) != ours:
            return  # moved again by someone else: theirs is the newer decision
        restored = Alias(
            name=name, alias=alias, version=before.version if before else None, set_at=_now(),
            set_by=current_user(), previous=ours.version,
        )
        with contextlib.suppress(PreconditionFailed):
            self.storage.put_if_match(key, convert.to_json(restored), stored.etag)

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point ``name@alias`` at ``version`` (compare-and-swap; every move is logged)."""
        check_name(name)
        check_alias(alias)
        check_version(version)
        self._check_marker(create=True)
        self._live_version(name, version)
        record, current = self._swap_alias(name, alias, version)
        # A delete may have tombstoned the version between the check above and the swap. Look
        # again now that the alias is stored: delete looks at aliases after its tombstone, so
        # one of the two always sees the other.
        try:
            self._live_version(name, version)
        except VersionNotFound:
            self._undo_alias(name, alias, record, current)
            raise VersionNotFound(
                f"{name}:{version} was deleted while {name}@{alias} was being set; the alias was left "
                f"{'at version ' + str(current.version) if current and current.version else 'unset'}"
            ) from None
        self._log(name, "alias_set", version=version, alias=alias, previous=record.previous)
        get_registry().broadcast(
            "modelshelf_alias_changed", shelf=self, name=name, alias=alias, version=version, previous=current
        )
        return record

    def remove_alias(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        self._check_marker(create=True)
        record, current = self._swap_alias(name, alias, None)
        self._log(name, "alias_removed", alias=alias, previous=record.previous)
        get_registry().broadcast(
            "modelshelf_alias_changed", shelf=self, name=name, alias=alias, version=None, previous=current
        )

    def aliases(self, name: str) -> dict[str, Alias]:
        """The aliases currently set on a model, by alias name.

        Entries that are not valid alias records of this model are skipped with a warning.
        """
        check_name(name)
        found, problems = self._scan_aliases(name)
        self._warn_skipped(problems)
        return found

    def _scan_aliases(self, name: str) -> tuple[dict[str, Alias], list[Problem]]:
        """The aliases set on a model, and the entries of its ``_aliases/`` that are not valid
        alias records of this model (stray keys, unreadable records, records naming another)."""
        prefix = f"models/{name}/_aliases/"
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
                return self._read_record(info.key, lambda data: self._parse_alias(name, alias, data), info.etag)
            except KeyNotFound:
                return None
            except InvalidRecord as exc:
                return Problem(name, None, f"unreadable alias {info.key}: {exc}")

        found = run_parallel(read, candidates, max_workers=self._record_workers)
        problems.extend(r for r in found if isinstance(r, Problem))
        aliases = sorted((r for r in found if isinstance(r, Alias) and r.version is not None), key=lambda a: a.alias)
        return {a.alias: a for a in aliases}, problems

    # --- history, delete, gc, verify -------------------------------------------------------

    def history(self, name: str) -> list[Event]:
        """The model's event log (uploads, alias moves, deletions), oldest first."""
        check_name(name)
        if not self._version_numbers(name):
            raise self._model_not_found(name)
        events, problems = self._scan_history(name)
        self._warn_skipped(problems)
        return events

    def _scan_history(self, name: str) -> tuple[list[Event], list[Problem]]:
        """The model's events, oldest first, and the entries of its ``_log/`` that are not
        events of this model (stray keys, unreadable records, events of another model)."""
        prefix = self._log_prefix(name)
        infos: list[ObjectInfo] = []
        problems: list[Problem] = []
        for info in sorted(self.storage.list(prefix), key=lambda i: i.key):
            filename = info.key[len(prefix) :]
            if "/" in filename or not filename.endswith(".json"):
                problems.append(Problem(name, None, f"stray key {info.key}: not an event (<time>-<random>.json)"))
            else:
                infos.append(info)

        def parse(data: bytes, source: str) -> Event:
            event = convert.from_json(data, Event, source=source)
            if event.name != name:
                raise InvalidRecord(f"{source} is an event of {event.name}, not of {name}; the shelf is damaged")
            return event

        def read(info: ObjectInfo) -> Event | Problem | None:
            source = f"{self.url}/{info.key}"
            try:
                return self._read_record(info.key, lambda data: parse(data, source), info.etag)
            except KeyNotFound:
                return None
            except InvalidRecord as exc:
                return Problem(name, None, f"unreadable event {info.key}: {exc}")

        found = run_parallel(read, infos, max_workers=self._record_workers)
        problems.extend(r for r in found if isinstance(r, Problem))
        return [r for r in found if isinstance(r, Event)], problems

    def delete(self, ref: str, *, force: bool = False) -> Tombstone:
        """Replace a version's manifest by a tombstone; its number is never reused.

        A version that an alias points to is kept unless ``force`` is true, which also removes
        those aliases. Blobs are reclaimed later by :meth:`gc`.
        """
        parsed = parse_ref(ref)
        if parsed.version is None:
            raise InvalidName(f"name the version to delete explicitly, like {parsed.name}:3")
        name, number = parsed.name, parsed.version
        self._check_marker(create=True)
        key = self._version_key(name, number)
        try:
            stored = self.storage.read(key)
        except KeyNotFound:
            if not self._version_numbers(name):
                raise self._model_not_found(name) from None
            raise VersionNotFound(f"{name} has no version {number}") from None
        self._live_version(name, number, etag=stored.etag)
        pointing = sorted(a for a, rec in self.aliases(name).items() if rec.version == number)
        if pointing and not force:
            raise ModelshelfError(
                f"{name}:{number} is the target of alias {', '.join(pointing)}: move the alias first, "
                "or delete with force (CLI: --force) to remove the alias too"
            )
        tombstone = Tombstone(name=name, version=number, deleted_at=_now(), deleted_by=current_user())
        tombstone_data = convert.to_json(tombstone)
        try:
            tombstone_etag = self.storage.put_if_match(key, tombstone_data, stored.etag)
        except StorageError as exc:
            # A retry after a lost answer meets our own tombstone: the delete did land.
            landed = self.storage.stat(key) if self._holds(key, tombstone_data) else None
            if landed is None:
                if isinstance(exc, PreconditionFailed):
                    raise ConflictError(f"{name}:{number} changed while deleting it; try again") from None
                raise
            tombstone_etag = landed.etag
        # An alias may have been pointed here between the check above and the tombstone. set_alias
        # looks at the manifest after storing the alias, so one of the two sees the other.
        pointing = sorted(a for a, rec in self.aliases(name).items() if rec.version == number)
        if pointing and not force:
            try:
                self.storage.put_if_match(key, stored.data, tombstone_etag)
            except PreconditionFailed:
                pass  # changed again (another delete): the version stays deleted, aliases checked there
            else:
                raise ConflictError(
                    f"alias {', '.join(pointing)} was pointed at {name}:{number} while it was being "
                    "deleted; nothing was deleted: move the alias first, or delete with force"
                )
        for alias in pointing:
            with contextlib.suppress(AliasNotFound):
                self.remove_alias(name, alias)
        # The marker lets listings skip the version without reading its manifest. Should this write
        # be lost, readers still find the tombstone, only one request later.
        with contextlib.suppress(StorageError):  # an optimisation only: see above
            self.storage.put_if_absent(self._marker_key(name, number), convert.to_json(tombstone))
        self._log(name, "delete", version=number)
        get_registry().broadcast("modelshelf_version_deleted", shelf=self, name=name, version=number)
        return tombstone

    def _referenced_blobs(self) -> tuple[set[str], list[str]]:
        """Every blob a manifest on the shelf references, and the manifests that could not be parsed.

        Tombstones and deletion markers are not trusted to mean "nothing referenced": every
        manifest is read. One that cannot be parsed (damaged, or from a newer modelshelf) keeps
        every sha256 its bytes mention, so it can never make gc delete a blob it needs.
        """
        referenced: set[str] = set()
        unreadable: list[str] = []
        for name in self.models():
            manifests = self._scan_versions(name)[0]

            def read(item: tuple[int, ObjectInfo], name: str = name) -> tuple[set[str], str | None]:
                number, info = item
                key = self._version_key(name, number)
                try:
                    data = self._read_record(key, bytes, info.etag)
                except KeyNotFound:
                    return set(), None
                try:
                    record = self._parse_manifest(name, number, data)
                except InvalidRecord as exc:
                    return mentioned_blobs(data), f"{name}:{number}: {exc}"
                if isinstance(record, ModelVersion):
                    return {f.sha256 for f in record.files}, None
                return set(), None

            for shas, problem in run_parallel(read, sorted(manifests.items()), max_workers=self._record_workers):
                referenced |= shas
                if problem:
                    unreadable.append(problem)
        return referenced, unreadable

    def gc(self, *, dry_run: bool = False, grace: dt.timedelta | None = None) -> GcReport:
        """Delete blobs that no manifest and no upload in progress references, if older than
        ``grace`` (default 24 hours, ``MODELSHELF_GC_GRACE`` seconds).

        Safe to run while others upload, delete and move aliases: see :mod:`modelshelf.leases` for
        the protocol and the invariant it keeps.
        """
        grace = _gc_grace(grace)
        self._check_marker(create=False)
        if not dry_run:
            check_conditional_writes(self.storage)  # deletes and leases are writes too
        run = None if dry_run else HeldLease(self.storage, "gc", ttl=self.lease_ttl).acquire()
        try:
            # The run record is stored first: an upload that starts later either sees it, or wrote
            # its lease early enough for the listing below to see that.
            now = run.server_now() if run is not None else _now()
            blobs = list(self.storage.list("blobs/sha256/"))
            in_flight: set[str] = set()
            for _, data in live_leases(self.storage, "upload", lambda: now):
                in_flight |= mentioned_blobs(data)
            referenced, unreadable = self._referenced_blobs()
            cutoff = now - grace
            candidates: list[ObjectInfo] = []
            kept_recent = 0
            for info in blobs:
                sha = info.key.rsplit("/", 1)[-1]
                if sha in referenced or sha in in_flight:
                    continue
                if info.modified is not None and info.modified > cutoff:
                    kept_recent += 1
                    continue
                candidates.append(info)
            removed: list[ObjectInfo] = []
            stopped_early = False
            if run is None:
                removed = candidates
            else:
                for start in range(0, len(candidates), _GC_BATCH):
                    if not run.fresh():
                        stopped_early = True  # others may take this run for dead: stop deleting
                        break
                    batch = candidates[start : start + _GC_BATCH]
                    run_parallel(self.storage.delete, [info.key for info in batch])
                    removed.extend(batch)
                if not stopped_early:
                    # Temporary files and unfinished multipart uploads may belong to a writer
                    # still at work: only those older than any live lease can be debris.
                    self.storage.cleanup(max(grace, dt.timedelta(seconds=10 * self.lease_ttl)))
                    abandoned = now - max(grace, dt.timedelta(seconds=10 * self.lease_ttl))
                    for key in expired_leases(self.storage, abandoned):
                        if key != run.key:
                            self.storage.delete(key)
        finally:
            if run is not None:
                run.release()
        return GcReport(
            tuple(info.key for info in removed),
            sum(info.size for info in removed),
            kept_recent,
            len(referenced),
            dry_run,
            in_flight=len(in_flight),
            unreadable=tuple(unreadable),
            stopped_early=stopped_early,
        )

    def _remove_corrupt_blobs(
        self, entries: list[FileEntry], check: Callable[[FileEntry], str | None]
    ) -> list[str]:
        """Delete blobs that hashed wrong, each checked again first; return the sha256s removed.

        Deleting is what gc does, so it runs under a gc-run record and spares the blobs of live
        uploads: an upload that finds the blob gone stores it again before publishing.
        """
        check_conditional_writes(self.storage)
        removed: list[str] = []
        with HeldLease(self.storage, "gc", ttl=self.lease_ttl) as run:
            in_flight: set[str] = set()
            for _, data in live_leases(self.storage, "upload", run.server_now):
                in_flight |= mentioned_blobs(data)
            for entry in entries:
                key = self._blob_key(entry.sha256)
                before = self.storage.stat(key)
                # A second read rules out a read that went wrong on the way; the etag rules out a
                # repair that landed meanwhile.
                if entry.sha256 in in_flight or before is None or check(entry) in (None, _MISSING_BLOB):
                    continue
                after = self.storage.stat(key)
                if after is None or after.etag != before.etag or not run.fresh():
                    continue
                self.storage.delete(key)
                removed.append(entry.sha256)
        return removed

    def verify(self, ref: str | None = None, *, repair: bool = False) -> list[Problem]:
        """Re-hash stored blobs of one version (``ref``) or of the whole shelf; return every defect.

        With ``repair``, a stored blob whose bytes do not match its sha256 (bit rot, an old client,
        a stray write) is removed, under the same protocol as ``gc``: an upload or copy of the
        genuine file then stores it again, which a corrupt blob of the right size would prevent.
        """
        problems: list[Problem] = []
        versions: list[ModelVersion] = []
        if ref is not None:
            versions.append(self.get(ref))
        else:
            names, skipped = self._scan_models()
            problems.extend(skipped)
            for name in names:
                try:
                    numbers, deleted = self._scan_versions(name, problems)
                    tombstoned: set[int] = set()
                    for number, info in sorted(numbers.items()):
                        try:
                            record = self._manifest(name, number, info.etag)
                        except (InvalidRecord, KeyNotFound) as exc:
                            problems.append(Problem(f"{name}:{number}", None, f"unreadable manifest: {exc}"))
                            continue
                        if isinstance(record, ModelVersion):
                            versions.append(record)
                            if number in deleted:
                                problems.append(Problem(record.ref, None, "has a deletion marker but a live manifest: listings hide it"))
                        else:
                            tombstoned.add(number)
                    aliases, alias_problems = self._scan_aliases(name)
                    problems.extend(alias_problems)
                    for alias in aliases.values():
                        if alias.version not in numbers:
                            problems.append(Problem(f"{name}@{alias.alias}", None, f"points to missing version {alias.version}"))
                        elif alias.version in tombstoned:
                            problems.append(Problem(f"{name}@{alias.alias}", None, f"points to deleted version {alias.version}"))
                    problems.extend(self._scan_history(name)[1])
                except InvalidRecord as exc:
                    problems.append(Problem(name, None, str(exc)))
        checked: dict[str, str | None] = {}

        def check(entry: FileEntry) -> str | None:
            key = self._blob_key(entry.sha256)
            digest = hashlib.sha256()
            size = 0
            try:
                for chunk in self.storage.read_stream(key):
                    digest.update(chunk)
                    size += len(chunk)
            except KeyNotFound:
                return _MISSING_BLOB
            if size != entry.size:
                return f"blob has {size} bytes, expected {entry.size}"
            if digest.hexdigest() != entry.sha256:
                return "blob content does not match its sha256"
            return None

        unique = {f.sha256: f for v in versions for f in v.files}
        for entry, result in zip(unique.values(), run_parallel(check, unique.values()), strict=True):
            checked[entry.sha256] = result
        corrupt = [unique[sha] for sha, result in checked.items() if result and result != _MISSING_BLOB]
        if repair and corrupt:
            for sha in self._remove_corrupt_blobs(corrupt, check):
                checked[sha] = f"{checked[sha]}: removed, so that the next upload or copy of the genuine file stores it again"
        # The local cache's copies too: a bad one is evicted (the next use fetches it again).
        cached = dict(zip(unique, run_parallel(self.cache.check, unique.values()), strict=True))
        for version in versions:
            for entry in version.files:
                if checked.get(entry.sha256):
                    problems.append(Problem(version.ref, entry.path, checked[entry.sha256] or ""))
                if cached.get(entry.sha256):
                    problems.append(Problem(version.ref, entry.path, cached[entry.sha256] or ""))
        return problems


__all__ = ["GcReport", "Problem", "Ref", "Shelf", "VersionSummary", "open"]
