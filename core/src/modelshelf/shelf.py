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
from .refs import Ref, check_alias, check_file_path, check_name, check_version, parse_ref
from .serializers import SavedModel, Serializer, choose
from .storage import ObjectInfo, Storage
from .transfer import Progress, counted, hash_file, run_parallel

T = TypeVar("T")
MARKER_KEY = ".modelshelf.json"
SHELF_FORMAT = 1
_VERSION_FILE = re.compile(r"(\d{10})\.(json|deleted)")
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
_MAX_WRITE_ATTEMPTS = 1000


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
    removed: tuple[str, ...]
    removed_bytes: int
    kept_recent: int
    referenced: int
    dry_run: bool


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
        record = self._read_record(key, lambda data: convert.manifest_from_json(data, source=f"{self.url}/{key}"), etag)
        if record.name != name or record.version != version:
            raise InvalidRecord(
                f"{self.url}/{key} claims to be {record.name}:{record.version}; the shelf is damaged"
            )
        return record

    def _scan_versions(self, name: str) -> tuple[dict[int, ObjectInfo], set[int]]:
        """One listing: every claimed version number -> its manifest's listing entry, and the
        numbers known to be deleted (their ``<n>.deleted`` marker), without reading a manifest."""
        manifests: dict[int, ObjectInfo] = {}
        deleted: set[int] = set()
        prefix = self._versions_prefix(name)
        for info in self.storage.list(prefix):
            match = _VERSION_FILE.fullmatch(info.key[len(prefix) :])
            if match and match.group(2) == "json":
                manifests[int(match.group(1))] = info
            elif match:
                deleted.add(int(match.group(1)))
        return manifests, deleted

    def _version_numbers(self, name: str) -> dict[int, str]:
        """Every claimed version number of a model (live or deleted) -> its manifest etag."""
        return {number: info.etag for number, info in self._scan_versions(name)[0].items()}

    def _marker_key(self, name: str, version: int) -> str:
        return f"{self._versions_prefix(name)}{version:010d}.deleted"

    # --- listing ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of every model with at least one claimed version, sorted."""
        self._check_marker(create=False)
        found: list[str] = []
        pending = ["models/"]
        while pending:
            prefix = pending.pop()
            for child in self.storage.list_prefixes(prefix):
                segment = child[len(prefix) :].rstrip("/")
                if segment == "_versions" and prefix != "models/":
                    found.append(prefix[len("models/") :].rstrip("/"))
                elif not segment.startswith(("_", ".")):
                    pending.append(child)
        return sorted(found)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every live version of a model, oldest first, with its whole manifest.

        Manifests are read in parallel and kept in the local record cache, so listing again reads
        only what changed. :meth:`list_versions` answers from one listing without reading any.
        """
        check_name(name)
        self._check_marker(create=False)
        manifests, deleted = self._scan_versions(name)
        if not manifests:
            raise self._model_not_found(name)
        live = [(n, info.etag) for n, info in sorted(manifests.items()) if n not in deleted]
        records = run_parallel(
            lambda item: self._manifest(name, item[0], item[1]), live, max_workers=self._record_workers
        )
        return [r for r in records if isinstance(r, ModelVersion)]

    def list_versions(self, name: str) -> list[VersionSummary]:
        """Version numbers and creation times of a model's live versions, from one listing.

        The cheap way to enumerate thousands of versions on object storage (a request per 1,000
        versions); use :meth:`versions` or :meth:`get` for metadata.
        """
        check_name(name)
        self._check_marker(create=False)
        manifests, deleted = self._scan_versions(name)
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
        sent, reused = self._upload_blobs({f.sha256: blobs[f.sha256] for f in draft.files})
        published = self._publish(draft)
        self._recheck_blobs(reused, blobs)
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

    def _upload_blobs(self, blobs: Mapping[str, Path]) -> tuple[int, set[str]]:
        """Upload the blobs the shelf does not have yet.

        Returns the bytes sent and the blobs that were already there (reused, not re-sent).
        """
        sizes = {sha: os.stat(path).st_size for sha, path in blobs.items()}
        with Progress(sum(sizes.values()), "upload") as progress:

            def put(sha: str) -> int:
                key = self._blob_key(sha)
                existing = self.storage.stat(key)
                if existing is not None and existing.size == sizes[sha]:
                    self.storage.touch(key)  # restart gc's grace period for a blob we now reference
                    progress.update(sizes[sha])
                    return -1
                self.storage.put_file(key, blobs[sha])
                progress.update(sizes[sha])
                return sizes[sha]

            results = run_parallel(put, list(blobs))
        reused = {sha for sha, sent in zip(blobs, results, strict=True) if sent < 0}
        return sum(sent for sent in results if sent > 0), reused

    def _recheck_blobs(self, reused: Iterable[str], local_by_sha: Mapping[str, Path]) -> None:
        """Re-upload any reused blob that vanished before the manifest landed.

        A concurrent ``gc`` may take an old blob for an orphan between our check and our manifest;
        blobs this upload wrote itself are younger than gc's grace period and safe.
        """

        def check(sha: str) -> None:
            key = self._blob_key(sha)
            if self.storage.stat(key) is None:
                self.storage.put_file(key, local_by_sha[sha])

        run_parallel(check, sorted(reused))

    def _publish(self, draft: ModelVersion) -> ModelVersion:
        """Claim the next version number by creating its manifest; retry on a lost race."""
        # A writer publishing repeatedly tries the number after its last one without listing
        # (create-only makes a stale guess safe); otherwise, or after losing, it lists.
        candidate = self._next_version.get(draft.name) or max(self._version_numbers(draft.name), default=0) + 1
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            record = attrs.evolve(draft, version=candidate, created_at=_now())
            try:
                self.storage.put_if_absent(self._version_key(draft.name, candidate), convert.to_json(record))
                self._next_version[draft.name] = candidate + 1
                return record
            except AlreadyExists:
                # Someone took this number. Re-list now and then: under heavy contention a writer
                # that only counts up would lag behind the others.
                if attempt % 8 == 7:
                    candidate = max(self._version_numbers(draft.name), default=candidate) + 1
                else:
                    candidate += 1
        raise ConflictError(
            f"could not claim a version number for {draft.name} after {_MAX_WRITE_ATTEMPTS} attempts"
        )

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

    def fetch(self, version: ModelVersion) -> None:
        """Make sure every blob of ``version`` is in the local cache, verified."""
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

        Files are independent copies. ``link=True`` hardlinks them from the cache instead (no
        extra disk space, read-only like the cache); never edit such files in place: the cache
        would then serve the edited bytes.
        """
        version = self.get(ref)
        dest_path = Path(dest)
        if dest_path.exists() and not dest_path.is_dir():
            raise ModelshelfError(f"download destination {dest_path} exists and is not a directory")
        self.fetch(version)  # everything is verified before anything lands in dest
        self.cache.materialize(version.files, dest_path, link=link)
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
                f"{version.ref} was saved by serializer {info.name!r} from {info.distribution} "
                f"{info.distribution_version}: install it with `pip install {info.distribution}`"
            )
        serializer = entry.serializer
        if not (serializer.safe and info.safe) and not trust:
            raise UntrustedFormat(
                f"{version.ref} is stored as {info.format} ({info.name}), and loading it can run "
                "code stored in the files: load it with trust=True only if you "
                "trust whoever uploaded it"
            )
        self.fetch(version)
        digest = hashlib.sha256(
            "\n".join(f"{f.path}\0{f.sha256}" for f in version.files).encode()
        ).hexdigest()
        directory = self.cache.snapshot(digest, version.files)
        return serializer.load(directory, details=info.details, trust=trust, **options)

    # --- aliases ---------------------------------------------------------------------------

    def _read_alias(self, name: str, alias: str) -> Alias | None:
        key = self._alias_key(name, alias)
        try:
            stored = self.storage.read(key)
        except KeyNotFound:
            return None
        return convert.from_json(stored.data, Alias, source=f"{self.url}/{key}")

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
                current = convert.from_json(stored.data, Alias, source=f"{self.url}/{key}")
                etag: str | None = stored.etag
            except KeyNotFound:
                current, etag = None, None
            if version is None and (current is None or current.version is None):
                raise self._alias_not_found(name, alias)
            record = Alias(
                name=name, alias=alias, version=version, set_at=_now(), set_by=current_user(),
                previous=current.version if current else None,
            )
            try:
                if etag is None:
                    self.storage.put_if_absent(key, convert.to_json(record))
                else:
                    self.storage.put_if_match(key, convert.to_json(record), etag)
                return record, current
            except (AlreadyExists, PreconditionFailed):
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        raise ConflictError(f"could not update alias {name}@{alias}: too many concurrent writers")

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point ``name@alias`` at ``version`` (compare-and-swap; every move is logged)."""
        check_name(name)
        check_alias(alias)
        check_version(version)
        self._check_marker(create=True)
        self._live_version(name, version)
        record, current = self._swap_alias(name, alias, version)
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
        """The aliases currently set on a model, by alias name."""
        check_name(name)
        prefix = f"models/{name}/_aliases/"
        infos = [i for i in self.storage.list(prefix) if i.key.endswith(".json")]

        def read(info: Any) -> Alias:
            source = f"{self.url}/{info.key}"
            return self._read_record(info.key, lambda data: convert.from_json(data, Alias, source=source), info.etag)

        found = run_parallel(read, infos, max_workers=self._record_workers)
        return {a.alias: a for a in sorted(found, key=lambda a: a.alias) if a.version is not None}

    # --- history, delete, gc, verify -------------------------------------------------------

    def history(self, name: str) -> list[Event]:
        """The model's event log (uploads, alias moves, deletions), oldest first."""
        check_name(name)
        if not self._version_numbers(name):
            raise self._model_not_found(name)
        infos = sorted(self.storage.list(self._log_prefix(name)), key=lambda i: i.key)

        def read(info: Any) -> Event:
            source = f"{self.url}/{info.key}"
            return self._read_record(info.key, lambda data: convert.from_json(data, Event, source=source), info.etag)

        return run_parallel(read, infos, max_workers=self._record_workers)

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
        for alias in pointing:
            self.remove_alias(name, alias)
        tombstone = Tombstone(name=name, version=number, deleted_at=_now(), deleted_by=current_user())
        try:
            self.storage.put_if_match(key, convert.to_json(tombstone), stored.etag)
        except PreconditionFailed:
            raise ConflictError(f"{name}:{number} changed while deleting it; try again") from None
        # The marker lets listings skip the version without reading its manifest. Should this write
        # be lost, readers still find the tombstone, only one request later.
        with contextlib.suppress(AlreadyExists):
            self.storage.put_if_absent(self._marker_key(name, number), convert.to_json(tombstone))
        self._log(name, "delete", version=number)
        get_registry().broadcast("modelshelf_version_deleted", shelf=self, name=name, version=number)
        return tombstone

    def _referenced_blobs(self) -> set[str]:
        referenced: set[str] = set()
        for name in self.models():
            for version in self.versions(name):
                referenced.update(f.sha256 for f in version.files)
        return referenced

    def gc(self, *, dry_run: bool = False, grace: dt.timedelta | None = None) -> GcReport:
        """Delete blobs no live version references, if older than ``grace`` (default 24 hours)."""
        if grace is None:
            seconds = os.environ.get("MODELSHELF_GC_GRACE")
            grace = dt.timedelta(seconds=float(seconds)) if seconds else DEFAULT_GC_GRACE
        self._check_marker(create=False)
        # Blobs are listed before manifests: a blob uploaded after this listing is never a
        # candidate, and a manifest written after it can only reference listed-and-old blobs,
        # which the uploader re-checks (see _recheck_blobs).
        blobs = list(self.storage.list("blobs/sha256/"))
        referenced = self._referenced_blobs()
        cutoff = _now() - grace
        removed: list[str] = []
        removed_bytes = kept_recent = 0
        for info in blobs:
            sha = info.key.rsplit("/", 1)[-1]
            if sha in referenced:
                continue
            if info.modified is not None and info.modified > cutoff:
                kept_recent += 1
                continue
            removed.append(info.key)
            removed_bytes += info.size
        if not dry_run:
            run_parallel(self.storage.delete, removed)
            self.storage.cleanup(grace)
        return GcReport(tuple(removed), removed_bytes, kept_recent, len(referenced), dry_run)

    def verify(self, ref: str | None = None) -> list[Problem]:
        """Re-hash stored blobs of one version (``ref``) or of the whole shelf; return every defect."""
        problems: list[Problem] = []
        versions: list[ModelVersion] = []
        if ref is not None:
            versions.append(self.get(ref))
        else:
            for name in self.models():
                try:
                    numbers = self._version_numbers(name)
                    for number, etag in sorted(numbers.items()):
                        try:
                            record = self._manifest(name, number, etag)
                        except InvalidRecord as exc:
                            problems.append(Problem(f"{name}:{number}", None, f"unreadable manifest: {exc}"))
                            continue
                        if isinstance(record, ModelVersion):
                            versions.append(record)
                    for info in self.storage.list(f"models/{name}/_aliases/"):
                        try:
                            alias = self._read_record(
                                info.key, lambda data, key=info.key: convert.from_json(data, Alias, source=key), info.etag
                            )
                            if alias.version is not None and alias.version not in numbers:
                                problems.append(Problem(f"{name}@{alias.alias}", None, f"points to missing version {alias.version}"))
                        except InvalidRecord as exc:
                            problems.append(Problem(name, None, f"unreadable alias {info.key}: {exc}"))
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
                return "blob is missing"
            if size != entry.size:
                return f"blob has {size} bytes, expected {entry.size}"
            if digest.hexdigest() != entry.sha256:
                return "blob content does not match its sha256"
            return None

        unique = {f.sha256: f for v in versions for f in v.files}
        for entry, result in zip(unique.values(), run_parallel(check, unique.values()), strict=True):
            checked[entry.sha256] = result
        for version in versions:
            for entry in version.files:
                if checked.get(entry.sha256):
                    problems.append(Problem(version.ref, entry.path, checked[entry.sha256] or ""))
        return problems


__all__ = ["GcReport", "Problem", "Ref", "Shelf", "VersionSummary", "open"]
