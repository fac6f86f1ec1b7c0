"""Version indexes: immutable summaries of runs of versions, so that a cold listing of full
records on an object store reads a few objects instead of one manifest per version.

::

    models/<name>/_index/<first>-<last>.json    the manifests of versions first..last (create-only)

Contract:

* **Optional and disposable.** Any reader may write an index, none has to, and deleting one (or
  all) changes nothing but speed. Readers keep the index objects they read in the local record
  cache (not the thousand manifests inside them), so a warm listing reads no index again. An index never makes ``gc`` keep or delete anything (``gc``
  reads manifests only), and nothing that fetches files reads one: :meth:`Catalog.resolve
  <modelshelf.catalog.Catalog.resolve>` (``get``, ``load``, ``download``, ``copy``) always reads
  the manifest itself. Only :meth:`Catalog.versions <modelshelf.catalog.Catalog.versions>` uses
  them, and only on object stores (a local shelf reads its manifests directly).
* **The listing stays the source of truth.** Which versions exist, and which are deleted, comes
  from the ``_versions/`` listing of the same call, never from an index. An entry is used only
  when its number is listed, not flagged deleted, and its recorded etag is the listed etag of the
  manifest: a version deleted (its manifest replaced by a tombstone) or re-written after the index
  was made is read from its manifest. New versions beyond the last index are read directly.
* **A damaged or lying entry is never used.** The index carries the sha256 of its entries (a
  damaged object is ignored whole); every entry must parse as the manifest of exactly its key
  (name, number, file paths checked as for any manifest); and where the store's etag is the MD5
  of the content (S3 without KMS, MinIO), the entry's bytes must have that MD5. Anything else is
  read from the manifest. An index whose schema is newer than this modelshelf knows is ignored.
* **Blocks.** An index covers a complete block: :data:`BLOCK` numbers (1-250, 251-500, ...), or,
  inside the last, incomplete one, :data:`SMALL_BLOCK` numbers (1001-1025, ...); complete means
  every number of the block is claimed in the listing. A reader that read every manifest of a
  complete block without an index writes it, create-only, ignoring every failure (a read-only
  shelf, a race with another reader). Versions flagged as deleted have no entry.

Older modelshelf releases never list ``_index/`` (model folders skip ``_``-prefixed segments), so
they ignore indexes; shelves without indexes need no migration: the first listing writes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from . import layout
from .errors import InvalidRecord, KeyNotFound, ModelshelfError
from .records import ModelVersion, Tombstone
from .storage import ObjectInfo
from .transfer import run_parallel

if TYPE_CHECKING:
    from .catalog import Catalog

#: The index format this modelshelf writes and the newest it reads.
INDEX_SCHEMA = 1
#: Versions per index in complete runs (1,000 versions: 4 index objects).
BLOCK = 250
#: Versions per index inside the last, incomplete block.
SMALL_BLOCK = 25
#: An index larger than this is neither written nor read (manifests are read instead).
MAX_INDEX_BYTES = 32 << 20

_MD5_ETAG = re.compile(r'"?([0-9a-f]{32})"?')
#: The etag under which index objects are kept in the local record cache (see ``read_versions``).
_CACHED_INDEX = "version-index"

Record = ModelVersion | Tombstone


@attrs.frozen
class IndexEntry:
    """One version as its manifest key held it when the index was written."""

    #: The version number.
    version: int
    #: The manifest's etag when it was read (what the listing must still show).
    etag: str
    #: The manifest's exact bytes, as UTF-8 text.
    manifest: str


@attrs.frozen
class VersionIndex:
    """The manifests of one block of versions of one model."""

    schema: int
    name: str
    first: int
    last: int
    created_at: dt.datetime
    entries: tuple[IndexEntry, ...]


def block_of(number: int, size: int) -> tuple[int, int]:
    first = (number - 1) // size * size + 1
    return first, first + size - 1


def complete_blocks(claimed: Iterable[int]) -> list[tuple[int, int]]:
    """The blocks (first, last) whose every number is claimed: big ones, then small ones inside
    big blocks that are not complete."""
    numbers = set(claimed)
    found: list[tuple[int, int]] = []
    for first, last in sorted({block_of(n, BLOCK) for n in numbers}):
        if all(n in numbers for n in range(first, last + 1)):
            found.append((first, last))
            continue
        for small_first in range(first, last + 1, SMALL_BLOCK):
            small_last = small_first + SMALL_BLOCK - 1
            if all(n in numbers for n in range(small_first, small_last + 1)):
                found.append((small_first, small_last))
    return found


# --- the record --------------------------------------------------------------------------------


def _entries_digest(entries: Sequence[dict[str, object]]) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode(index: VersionIndex) -> bytes:
    entries = [
        {"version": e.version, "etag": e.etag, "manifest": e.manifest} for e in index.entries
    ]
    document = {
        "schema": index.schema,
        "kind": "version-index",
        "name": index.name,
        "first": index.first,
        "last": index.last,
        "created_at": index.created_at.astimezone(dt.UTC).isoformat(),
        "entries": entries,
        "entries_sha256": _entries_digest(entries),
    }
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode()


def decode(data: bytes, name: str, first: int, last: int, source: str) -> VersionIndex:
    """The index stored at the key of ``name``'s block ``first..last``; :class:`InvalidRecord` if
    it is damaged, newer than this modelshelf, or claims another model or block."""
    if len(data) > MAX_INDEX_BYTES:
        raise InvalidRecord(f"{source}: index larger than {MAX_INDEX_BYTES} bytes")
    try:
        document = json.loads(data)
        schema = document["schema"]
        if not isinstance(schema, int) or schema < 1:
            raise ValueError("bad schema")
        if schema > INDEX_SCHEMA:
            raise InvalidRecord(
                f"{source}: index schema {schema} is newer than this modelshelf reads ({INDEX_SCHEMA}); "
                "ignored (upgrade modelshelf to use it)"
            )
        entries = document["entries"]
        if (
            document.get("kind") != "version-index"
            or _entries_digest(entries) != document["entries_sha256"]
        ):
            raise ValueError("entries do not match their sha256")
        if (document["name"], document["first"], document["last"]) != (name, first, last):
            raise ValueError(f"claims {document['name']}:{document['first']}-{document['last']}")
        parsed = tuple(
            IndexEntry(int(e["version"]), str(e["etag"]), str(e["manifest"])) for e in entries
        )
        created = dt.datetime.fromisoformat(document["created_at"])
    except InvalidRecord:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecord(f"{source}: damaged version index ({exc})") from None
    return VersionIndex(schema, name, first, last, created, parsed)


# --- reading versions through indexes ------------------------------------------------------------


def _content_matches_etag(data: bytes, etag: str) -> bool:
    """False only when the etag is a content MD5 and ``data`` does not have it."""
    match = _MD5_ETAG.fullmatch(etag)
    if match is None:
        return True  # an opaque etag (Azure, GCS generations): the listing check is what there is
    return hashlib.md5(data, usedforsecurity=False).hexdigest() == match.group(1)


def read_versions(
    catalog: Catalog,
    name: str,
    manifests: dict[int, ObjectInfo],
    live: Sequence[tuple[int, str]],
    problem: Callable[[int, Exception], object],
) -> list[object]:
    """The records of ``live`` ((number, listed etag), in order) through the record cache, the
    indexes and, for the rest, the manifests; writes the indexes that were missing.

    Returns, per live number, its :class:`ModelVersion` or :class:`Tombstone`, or what
    ``problem(number, exc)`` made of a manifest that could not be read.
    """
    cache, url, storage = catalog.cache, catalog.url, catalog.storage
    wanted = dict(live)
    found: dict[int, object] = {}
    raw: dict[int, tuple[bytes, str]] = {}  # number -> (bytes, etag) of manifests read or cached

    def accept(number: int, data: bytes, etag: str, from_index: bool) -> bool:
        try:
            record = catalog.parse_manifest(name, number, data)
        except InvalidRecord:
            if from_index:
                return False  # the entry is bad: its manifest is read below
            raise
        found[number] = record
        raw[number] = (data, etag)
        return True

    for number, etag in live:
        cached = cache.get_record(url, layout.version_key(name, number), etag)
        if cached is not None:
            with contextlib.suppress(InvalidRecord):
                accept(number, cached, etag, False)

    blocks = complete_blocks(manifests)
    needed = [
        b for b in blocks if any(n in wanted and n not in found for n in range(b[0], b[1] + 1))
    ]

    def load(block: tuple[int, int]) -> VersionIndex | None:
        # Index objects are kept in the local record cache by key alone: a stale or damaged copy
        # can do no harm, since every entry is checked against this call's listing (and a copy
        # that does not decode is fetched again).
        key = layout.version_index_key(name, *block)
        source = f"{url}/{key}"
        cached = cache.get_record(url, key, _CACHED_INDEX)
        if cached is not None:
            with contextlib.suppress(InvalidRecord):
                return decode(cached, name, block[0], block[1], source)
        try:
            stored = storage.read(key)
            index = decode(stored.data, name, block[0], block[1], source)
        except (InvalidRecord, KeyNotFound):
            return None
        except ModelshelfError:
            return None  # an index is only a speed-up: any failure means reading manifests
        cache.put_record(url, key, _CACHED_INDEX, stored.data)
        return index

    missing_blocks: list[tuple[int, int]] = []
    for block, index in zip(
        needed, run_parallel(load, needed, max_workers=catalog.record_workers), strict=True
    ):
        if index is None:
            missing_blocks.append(block)
            continue
        for entry in index.entries:
            number = entry.version
            if (
                not block[0] <= number <= block[1]
                or number in found
                or wanted.get(number) != entry.etag
            ):
                continue
            data = entry.manifest.encode()
            if _content_matches_etag(data, entry.etag):
                accept(number, data, entry.etag, True)

    def read(number: int) -> object:
        key = layout.version_key(name, number)
        try:
            stored = storage.read(key)
            cache.put_record(url, key, stored.etag, stored.data)
            accept(number, stored.data, stored.etag, False)
            return found[number]
        except (InvalidRecord, KeyNotFound) as exc:
            return problem(number, exc)

    rest = [n for n, _ in live if n not in found]
    for number, result in zip(
        rest, run_parallel(read, rest, max_workers=catalog.record_workers), strict=True
    ):
        found[number] = result

    if missing_blocks:
        _write_indexes(catalog, name, missing_blocks, manifests, raw)
    return [found[n] for n, _ in live]


def _write_indexes(
    catalog: Catalog,
    name: str,
    blocks: list[tuple[int, int]],
    manifests: dict[int, ObjectInfo],
    raw: dict[int, tuple[bytes, str]],
) -> None:
    """Write, create-only, the index of every block whose listed versions were all read."""
    storage = catalog.storage

    def write(block: tuple[int, int]) -> None:
        entries: list[IndexEntry] = []
        for number in range(block[0], block[1] + 1):
            if number not in raw:
                continue  # flagged deleted (listings skip it unread) or unreadable
            data, etag = raw[number]
            if etag != manifests[number].etag:
                continue  # changed since the listing: leave it to be read
            try:
                entries.append(IndexEntry(number, etag, data.decode()))
            except UnicodeDecodeError:
                continue
        if not entries:
            return
        index = VersionIndex(
            INDEX_SCHEMA, name, block[0], block[1], dt.datetime.now(dt.UTC), tuple(entries)
        )
        data = encode(index)
        if len(data) > MAX_INDEX_BYTES:
            return
        with contextlib.suppress(ModelshelfError):  # read-only shelf, a racing reader: fine
            storage.put_if_absent(layout.version_index_key(name, *block), data)

    run_parallel(write, blocks, max_workers=4)
