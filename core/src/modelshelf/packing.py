"""Packs: the small files of a version stored together as one blob.

A pack is an ordinary content-addressed blob (so deduplication, ``gc``, leases, ``verify`` and
copies treat it like any other): the bytes of small files one after another, with no header and
no compression. The manifest is the index: a packed :class:`~modelshelf.records.FileEntry` names
its pack and the offset where it starts, and keeps its own sha256 and size, so a file read out of a
pack is verified on its own. Storing a directory of 2,000 small files then costs one write (one
``fsync``, one PUT) instead of 2,000; large files stay their own blobs, so identical weights are
still stored once across versions.

The local cache keeps a fetched pack as one blob: a download writes each packed file from it
straight to the destination (one file created per file, as for a plain copy), and a load, which
needs files of their own, takes them out of it into the cache. Either way each file is verified
against its own sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import attrs

from . import layout
from .cache import Cache
from .errors import ChangedWhileUploading, IntegrityError, KeyNotFound
from .records import PACKED_SCHEMA, WRITTEN_SCHEMA, Blob, FileEntry, ModelVersion
from .storage import Storage
from .transfer import Progress, VerifyingWriter, counted, run_parallel

#: Files smaller than this are packed. Above it a file's own write costs little next to its
#: transfer, and it keeps its own blob (deduplicated across versions on its own).
SMALL_FILE_BYTES = 64 << 10
#: A pack holds at most this many bytes (bounds what one changed small file costs to re-upload,
#: and what a ranged read of one packed file skips on a store without ranged reads).
PACK_MAX_BYTES = 64 << 20
#: A version with fewer distinct small files than this stores each as its own blob: packing a few
#: files saves little, and their manifest stays readable by releases that predate packs.
MIN_PACKED_FILES = 16
#: Files handled per task when many small files are written or read.
_BATCH = 64


def unpacked(version: ModelVersion) -> ModelVersion:
    """``version`` with every file as its own blob (what a copy publishes again, packing anew)."""
    if not version.packs and all(f.pack is None for f in version.files):
        return version
    files = tuple(FileEntry(f.path, f.sha256, f.size) for f in version.files)
    return attrs.evolve(version, files=files, packs=(), schema=WRITTEN_SCHEMA)


@contextlib.contextmanager
def packed(
    version: ModelVersion, blobs: Mapping[str, Path]
) -> Iterator[tuple[ModelVersion, dict[str, Path]]]:
    """``version`` with its small files in packs, and ``blobs`` (sha256 -> local copy) with the
    packs added; the packs are temporary files that live until the block ends.

    Each file is read again while it is packed and must still match its recorded sha256 and size
    (:class:`~modelshelf.errors.ChangedWhileUploading` otherwise). A version with too few small
    files comes back unchanged.
    """
    version = unpacked(version)
    first: dict[str, FileEntry] = {}
    for entry in version.files:  # in path order, one copy of each content
        if entry.size < SMALL_FILE_BYTES:
            first.setdefault(entry.sha256, entry)
    if len(first) < MIN_PACKED_FILES:
        yield version, dict(blobs)
        return
    groups: list[list[FileEntry]] = [[]]
    filled = 0
    for entry in first.values():
        if filled + entry.size > PACK_MAX_BYTES and groups[-1]:
            groups.append([])
            filled = 0
        groups[-1].append(entry)
        filled += entry.size
    with tempfile.TemporaryDirectory(prefix="modelshelf-packs-") as scratch:
        written = run_parallel(
            lambda item: _write_pack(Path(scratch) / f"pack{item[0]}", item[1], blobs),
            list(enumerate(groups)),
        )
        where: dict[str, tuple[str, int]] = {}
        packs: list[Blob] = []
        with_packs = dict(blobs)
        for path, pack, offsets in written:
            packs.append(pack)
            with_packs[pack.sha256] = path
            where.update((sha, (pack.sha256, offset)) for sha, offset in offsets.items())
        files = tuple(
            FileEntry(f.path, f.sha256, f.size, *where[f.sha256]) if f.sha256 in where else f
            for f in version.files
        )
        yield (
            attrs.evolve(version, files=files, packs=tuple(packs), schema=PACKED_SCHEMA),
            with_packs,
        )


def _write_pack(
    path: Path, entries: list[FileEntry], blobs: Mapping[str, Path]
) -> tuple[Path, Blob, dict[str, int]]:
    """Write ``entries``' files one after another into ``path``; return it, the pack, and where
    each content starts."""
    digest = hashlib.sha256()
    offsets: dict[str, int] = {}
    position = 0
    with open(path, "xb") as out:
        for entry in entries:
            source = blobs[entry.sha256]
            with open(source, "rb") as handle:
                data = handle.read(entry.size + 1)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                raise ChangedWhileUploading(
                    f"{source} changed while it was being uploaded (it no longer matches the sha256 "
                    "and size computed when the upload started): nothing was published; upload it "
                    "again once the file is complete"
                )
            out.write(data)
            digest.update(data)
            offsets[entry.sha256] = position
            position += len(data)
    return path, Blob(digest.hexdigest(), position), offsets


# --- reading -------------------------------------------------------------------------------------


def read_packed(storage: Storage, version: ModelVersion, entry: FileEntry) -> bytes:
    """The stored bytes of one packed file, by a ranged read of its pack (unverified: callers
    check them against ``entry``)."""
    assert entry.pack is not None and entry.offset is not None
    try:
        return storage.read_range(layout.blob_key(entry.pack), entry.offset, entry.size)
    except KeyNotFound:
        raise _missing_pack(storage, version, entry.pack) from None


@contextlib.contextmanager
def opened_packs(
    storage: Storage,
    cache: Cache,
    version: ModelVersion,
    entries: Iterable[FileEntry],
    progress: Progress,
) -> Iterator[Callable[[FileEntry], bytes | None]]:
    """``unpacked(entry)``: the bytes of each packed file of ``entries`` (``None`` for any other
    file), read from its pack in the cache.

    A pack the cache lacks is fetched into it once, verified whole while streaming. Each pack is
    hashed again when opened (the cache is not trusted; a bad copy is evicted and fetched again,
    once), and every wanted file in it is checked against its own sha256 and size before the block
    starts: a damaged pack or a wrong index raises :class:`~modelshelf.errors.IntegrityError`
    before anything is written. Callers verify the bytes they write again (the cached file is
    shared).
    """
    wanted: dict[str, dict[str, FileEntry]] = {}
    for entry in entries:
        assert entry.pack is not None
        wanted.setdefault(entry.pack, {})[entry.sha256] = entry
    packs = {p.sha256: p for p in version.packs}
    with contextlib.ExitStack() as stack:

        def open_pack(sha: str) -> int:
            pack = packs[sha]
            for attempt in range(2):
                if not cache.has(pack):
                    try:
                        chunks = storage.read_stream(layout.blob_key(sha))
                    except KeyNotFound:
                        raise _missing_pack(storage, version, sha) from None
                    cache.insert(pack, counted(chunks, progress), _pack_name(version, sha))
                fd = os.open(cache.blob_path(sha), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with open(fd, "rb", closefd=False) as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                    size = handle.tell()
                if (digest, size) == (sha, pack.size):
                    stack.callback(os.close, fd)
                    return fd
                os.close(fd)
                cache.evict(sha)
                if attempt:
                    raise IntegrityError(
                        f"{_pack_name(version, sha)} changed in the cache right after it was "
                        f"fetched and verified; is something writing into the cache {cache.root}?"
                    )
            raise AssertionError("unreachable")  # pragma: no cover

        fds = dict(zip(wanted, run_parallel(open_pack, list(wanted)), strict=True))
        for sha, files in wanted.items():
            for entry in files.values():
                _checked(os.pread(fds[sha], entry.size, entry.offset or 0), entry, version)

        def unpacked(entry: FileEntry) -> bytes | None:
            fd = fds.get(entry.pack or "")
            if fd is None or entry.sha256 not in wanted[entry.pack or ""]:
                return None
            return os.pread(fd, entry.size, entry.offset or 0)

        yield unpacked


def fetch_packed(
    storage: Storage,
    cache: Cache,
    version: ModelVersion,
    entries: Iterable[FileEntry],
    progress: Progress,
) -> None:
    """Put the packed ``entries`` into ``cache`` as files of their own, taken out of their packs
    (:func:`opened_packs`): a damaged pack or a wrong index leaves no new file in the cache."""
    files = list({f.sha256: f for f in entries}.values())
    with opened_packs(storage, cache, version, files, progress) as unpacked:

        def insert(batch: list[FileEntry]) -> None:
            for entry in batch:
                cache.insert(entry, (unpacked(entry) or b"",), f"{version.ref}/{entry.path}")

        # Creating files costs more than their bytes: several workers, each a batch.
        run_parallel(insert, [files[i : i + _BATCH] for i in range(0, len(files), _BATCH)])


def check_pack(
    storage: Storage, pack: Blob, entries: Iterable[FileEntry], what: ModelVersion
) -> tuple[str | None, dict[FileEntry, str]]:
    """What is wrong with a stored pack (re-hashed in full), and with each of ``entries`` in it."""
    try:
        chunks = storage.read_stream(layout.blob_key(pack.sha256))
    except KeyNotFound:
        return "blob is missing", {}
    try:
        with _verified_copy(None, chunks, pack, what) as handle:
            wrong: dict[FileEntry, str] = {}
            for entry in entries:
                try:
                    _checked(_read_at(handle, entry), entry, what)
                except IntegrityError as exc:
                    wrong[entry] = str(exc).removeprefix(f"{what.ref}/{entry.path}: ")
            return None, wrong
    except IntegrityError as exc:
        return str(exc).removeprefix(f"{_pack_name(what, pack.sha256)} "), {}


@contextlib.contextmanager
def _verified_copy(
    directory: Path | None, chunks: Iterable[bytes], pack: Blob, version: ModelVersion
) -> Iterator[BinaryIO]:
    """An unnamed temporary file holding the pack's stored bytes, verified against its sha256."""
    with tempfile.TemporaryFile(dir=directory) as handle:
        try:
            with VerifyingWriter(
                handle, pack.sha256, pack.size, _pack_name(version, pack.sha256)
            ) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                writer.finish()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a stream left half-read releases its connection now
        yield handle


def _pack_name(version: ModelVersion, sha256: str) -> str:
    return f"{version.ref}: pack {sha256[:12]}..."


def _read_at(handle: BinaryIO, entry: FileEntry) -> bytes:
    handle.seek(entry.offset or 0)
    return handle.read(entry.size)


def _checked(data: bytes, entry: FileEntry, version: ModelVersion) -> bytes:
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise IntegrityError(
            f"{version.ref}/{entry.path}: its bytes in pack {(entry.pack or '')[:12]}... do not "
            "match its recorded sha256 and size: the manifest's index of the pack is wrong; run "
            "`modelshelf verify`"
        )
    return data


def _missing_pack(storage: Storage, version: ModelVersion, sha256: str) -> IntegrityError:
    return IntegrityError(
        f"{version.ref}: pack {sha256[:12]}... is missing from shelf {storage.url}; "
        "run `modelshelf verify`"
    )
