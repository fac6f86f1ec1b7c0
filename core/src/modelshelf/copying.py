"""Moving versions between shelves: copy from shelf to shelf, and export/import of bundles.

A copied or imported version is published in the target as its next version number, with the
same files, metadata and serializer, and ``lineage.source`` recording where it came from. Each
version also carries an *origin* (the shelf-independent identity of the upload it descends from),
so copying again, or copying back, recognises what the target already holds and transfers nothing.

Blobs from a remote shelf travel through the local cache: every one is verified against its sha256
on the way in, and an interrupted copy resumes without downloading or re-sending what already
arrived. Blobs a shelf keeps as files on this machine are read in place, once, and verified by the
target as it stores them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import lzma
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from . import attachments, convert, layout
from .errors import ChangedWhileUploading, IntegrityError, InvalidRecord, ModelshelfError, NotFound
from .lineage import current_user
from .records import FileEntry, ModelVersion, Tombstone
from .refs import parse_ref
from .shelf import Shelf

BUNDLE_FORMAT = 1
BUNDLE_INDEX = "modelshelf-bundle.json"
_MANIFEST_MEMBER = re.compile(r"manifests/(\d{1,9})\.json")
_BLOB_MEMBER = re.compile(r"blobs/([0-9a-f]{64})")
#: A record attached to the version of ``manifests/<i>.json`` (see :mod:`modelshelf.attachments`).
_ATTACHED_MEMBER = re.compile(r"attached/(\d{1,9})/([a-z][a-z0-9-]{0,39})/([0-9a-f]{64})\.json")


@attrs.frozen
class CopyReport:
    """What a copy or an import did: ``copied`` and ``present`` map source refs to target refs."""

    copied: dict[str, str] = attrs.field(factory=dict)
    present: dict[str, str] = attrs.field(factory=dict)
    aliases: dict[str, int] = attrs.field(factory=dict)
    bytes_sent: int = 0
    #: Attached records (signatures...) newly stored on the target.
    attached: int = 0


def _utc(value: dt.datetime) -> str:
    try:
        return value.astimezone(dt.UTC).isoformat()
    except (OverflowError, ValueError):
        # Year 1 at +05:00 has no UTC equivalent: the recorded form is just as stable an identity.
        return value.isoformat()


def origin_of(version: ModelVersion) -> dict[str, Any]:
    """The identity of the upload a version descends from, the same on every shelf."""
    source = version.lineage.source or {}
    origin = source.get("origin")
    if isinstance(origin, dict):
        return origin
    return {
        "name": version.name,
        "version": version.version,
        "created_at": _utc(version.created_at),
        "created_by": version.created_by,
    }


def _origin_key(origin: dict[str, Any]) -> str:
    return json.dumps(origin, sort_keys=True)


def _target_index(target: Shelf, name: str) -> dict[str, ModelVersion]:
    try:
        return {_origin_key(origin_of(v)): v for v in target.versions(name)}
    except NotFound:
        return {}


def _local_copies(source: Shelf, version: ModelVersion) -> dict[str, Path]:
    """The blobs of ``version`` that ``source`` keeps as files on this machine, by sha256.

    A copy reads them in place, once, instead of through the cache (one write less); the target
    verifies every byte it stores. Packed files are not among them: repacking needs each on its own.
    """
    found: dict[str, Path] = {}
    for entry in version.files:
        if entry.pack is None and entry.sha256 not in found:
            path = source.storage.local_path(layout.blob_key(entry.sha256))
            if path is not None:
                found[entry.sha256] = path
    return found


def _resolve(source: Shelf, ref: str | None, all_models: bool) -> list[ModelVersion]:
    if all_models:
        if ref is not None:
            raise ModelshelfError("give either a reference or --all, not both")
        # Damaged entries are skipped with a warning (by models() and versions()), never fatal
        # for the rest of the shelf.
        versions: list[ModelVersion] = []
        for name in source.models():
            try:
                versions.extend(source.versions(name))
            except NotFound:
                continue  # a _versions folder holding only stray keys; versions() warned of each
        return versions
    if ref is None:
        raise ModelshelfError(
            "name what to copy: NAME (every version), NAME:N, NAME@ALIAS, or --all"
        )
    parsed = parse_ref(ref)
    if parsed.version is None and parsed.alias is None and not ref.endswith(":latest"):
        return source.versions(parsed.name)
    return [source.get(ref)]


def _carry(target: Shelf, version: ModelVersion, records: dict[str, dict[str, bytes]]) -> int:
    """Store the records attached to a source version beside its copy in ``target``."""
    if not records:
        return 0
    return attachments.carry(target.catalog, version.name, version.version, records)


def _republish(
    target: Shelf, version: ModelVersion, blobs: dict[str, Path], source: dict[str, Any]
) -> tuple[ModelVersion, int]:
    lineage = attrs.evolve(version.lineage, source={**source, "origin": origin_of(version)})
    draft = attrs.evolve(
        version, lineage=lineage, created_at=dt.datetime.now(dt.UTC), created_by=current_user()
    )
    published = target.publish_counted(draft, blobs)
    return published.version, published.bytes_sent


def copy(
    source: Shelf,
    target: Shelf,
    ref: str | None = None,
    *,
    all_models: bool = False,
    aliases: bool = False,
) -> CopyReport:
    """Copy versions from ``source`` to ``target``, sending only blobs the target lacks.

    ``ref`` is ``NAME`` (every version of the model), ``NAME:N``, ``NAME:latest`` or
    ``NAME@ALIAS``; ``all_models=True`` copies the whole shelf. With ``aliases=True`` the source's
    aliases on copied versions are set on the target too.
    """
    report = CopyReport()
    versions = _resolve(source, ref, all_models)
    indexes: dict[str, dict[str, ModelVersion]] = {}
    mapping: dict[tuple[str, int], int] = {}
    sent = attached = 0
    for version in versions:
        index = indexes.setdefault(version.name, _target_index(target, version.name))
        key = _origin_key(origin_of(version))
        records = attachments.attached(source.catalog, version.name, version.version)
        if key in index:
            report.present[version.ref] = index[key].ref
            mapping[(version.name, version.version)] = index[key].version
            attached += _carry(target, index[key], records)
            continue
        blobs = _local_copies(source, version)
        rest = tuple(f for f in version.files if f.sha256 not in blobs)
        source.fetch(attrs.evolve(version, files=rest))  # verified into the local cache
        blobs.update((f.sha256, source.cache.blob_path(f.sha256)) for f in rest)
        try:
            published, bytes_sent = _republish(
                target,
                version,
                blobs,
                {
                    "kind": "copy",
                    "shelf": source.url,
                    "name": version.name,
                    "version": version.version,
                },
            )
        except ChangedWhileUploading as exc:
            raise IntegrityError(
                f"{version.ref} in {source.url}: a stored file does not match its sha256 ({exc}); "
                f"nothing was copied; run `modelshelf --shelf {source.url} verify {version.ref}`"
            ) from None
        sent += bytes_sent
        index[key] = published
        report.copied[version.ref] = published.ref
        mapping[(version.name, version.version)] = published.version
        attached += _carry(target, published, records)
    if aliases:
        for name in sorted({v.name for v in versions}):
            current = target.aliases(name)
            for alias, record in source.aliases(name).items():
                mapped = mapping.get((name, record.version or 0))
                if mapped is None:
                    continue
                if alias not in current or current[alias].version != mapped:
                    target.set_alias(name, alias, mapped)
                report.aliases[f"{name}@{alias}"] = mapped
    return attrs.evolve(report, bytes_sent=sent, attached=attached)


# --- bundles ---------------------------------------------------------------------------------


def _regular_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    return info


def export_bundle(
    source: Shelf, ref: str | None, path: str | Path, *, all_models: bool = False
) -> list[ModelVersion]:
    """Write the versions ``ref`` names (see :func:`copy`) and their blobs into one tar file."""
    import io

    path = Path(path)
    directory = _export_directory(path)  # before anything is downloaded
    versions = _resolve(source, ref, all_models)
    manifests = [_manifest_bytes(version) for version in versions]
    for version in versions:
        source.fetch(version)
    records = [attachments.attached(source.catalog, v.name, v.version) for v in versions]
    aliases = {
        name: {a: r.version for a, r in source.aliases(name).items()}
        for name in sorted({v.name for v in versions})
    }
    index = {
        "format": BUNDLE_FORMAT,
        "created_at": _utc(dt.datetime.now(dt.UTC)),
        "source": source.url,
        "versions": len(versions),
        "aliases": aliases,
    }
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    try:
        # An unpredictable name created with O_EXCL: a name planted in a shared directory (a
        # symlink to a victim file) can neither be guessed nor written through.
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".~", suffix=".partial")
    except OSError as exc:
        raise ModelshelfError(_export_os_error(path, exc)) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
            data = json.dumps(index, indent=2, sort_keys=True).encode()
            tar.addfile(_regular_member(BUNDLE_INDEX, len(data)), io.BytesIO(data))
            for i, data in enumerate(manifests):
                tar.addfile(_regular_member(f"manifests/{i}.json", len(data)), io.BytesIO(data))
            for i, by_kind in enumerate(records):
                for kind, by_id in sorted(by_kind.items()):
                    for record_id, data in sorted(by_id.items()):
                        member = _regular_member(f"attached/{i}/{kind}/{record_id}.json", len(data))
                        tar.addfile(member, io.BytesIO(data))
            written: set[str] = set()
            for version in versions:
                for entry in version.files:
                    if entry.sha256 in written:
                        continue
                    written.add(entry.sha256)
                    blob = source.cache.blob_path(entry.sha256)
                    try:
                        handle = open(blob, "rb")  # noqa: SIM115 - closed by the with below
                    except OSError as exc:  # the cache's fault, not the bundle's
                        raise ModelshelfError(
                            f"cannot read {blob} from the download cache: {exc.strerror or exc}; "
                            "run `modelshelf cache verify` and export again"
                        ) from None
                    with handle:
                        tar.addfile(_regular_member(f"blobs/{entry.sha256}", entry.size), handle)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; a bundle is an ordinary file
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise ModelshelfError(_export_os_error(path, exc)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return versions


def _manifest_bytes(version: ModelVersion) -> bytes:
    try:
        return convert.to_json(version)
    except (OverflowError, ValueError) as exc:
        raise InvalidRecord(
            f"{version.ref} cannot be exported: a recorded time is out of range ({exc})"
        ) from None


def _export_directory(path: Path) -> Path:
    """The directory the bundle goes into, checked before anything is fetched or written."""
    if path.is_dir():
        raise ModelshelfError(
            f"cannot export to {path}: it is a directory; give a file name such as {path / 'models.tar'}"
        )
    directory = path.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ModelshelfError(
            f"cannot export to {path}: its folder {directory} {what}; create it first or choose another path"
        )
    return directory


def _export_os_error(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: {reason}; free some space on that disk or export elsewhere"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {reason}; check the permissions of {path.parent} or export elsewhere"
    if exc.errno == errno.EISDIR:
        return f"cannot write {path}: a directory is in the way; remove it or export elsewhere"
    return f"cannot write {path}: {reason}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What the decompressors raise on a truncated or corrupt stream (bz2 and gzip raise an OSError
#: without an errno, see _refusing_damage).
_DAMAGED: tuple[type[BaseException], ...] = (EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)


@contextlib.contextmanager
def _refusing_damage(where: str) -> Iterator[None]:
    """A bundle cut short or corrupted while its members are read: one clear error."""
    try:
        yield
    except _DAMAGED as exc:
        raise IntegrityError(
            f"{where} is truncated or damaged ({exc or type(exc).__name__}); export it again"
        ) from None
    except OSError as exc:
        if (
            exc.errno is not None
        ):  # a real I/O error (the cache's disk is full...): not the bundle's
            raise
        raise IntegrityError(f"{where} is truncated or damaged ({exc}); export it again") from None


def _check_index(index: dict[str, Any], where: str) -> dict[str, Any]:
    """The bundle index, with every field this module reads of the type it expects.

    A bundle may come from anyone: a wrong type is refused here, before any blob is read, rather
    than failing half-way through (or, for ``true``, being read as version 1).
    """

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    format_ = index.get("format")
    if not is_int(format_) or format_ != BUNDLE_FORMAT:
        raise InvalidRecord(
            f"{where}: unsupported bundle format {format_!r} (this modelshelf reads format {BUNDLE_FORMAT})"
        )
    if not isinstance(index.get("source", ""), str):
        raise InvalidRecord(f"{where}: 'source' must be a string")
    aliases = index.get("aliases", {})
    if aliases is None:
        aliases = {}
    if not isinstance(aliases, dict):
        raise InvalidRecord(
            f"{where}: 'aliases' must map model names to {{alias: version}} objects"
        )
    for name, pointers in aliases.items():
        if not isinstance(pointers, dict) or not all(
            isinstance(alias, str) and is_int(number) for alias, number in pointers.items()
        ):
            raise InvalidRecord(
                f"{where}: the aliases of {name!r} must map alias names to version numbers"
            )
    return {**index, "aliases": aliases}


def _chunks(handle: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


def import_bundle(target: Shelf, path: str | Path, *, aliases: bool = True) -> CopyReport:
    """Publish every version of a bundle into ``target``, verifying every blob.

    Members are never extracted by name: the index and manifests are parsed in memory and blobs go
    into the content-addressed cache under their verified sha256, so no member can write anywhere.
    Anything but the expected regular files refuses the whole bundle before any content is read.
    """
    path = Path(path)
    where = f"bundle {path.name}"
    index: dict[str, Any] | None = None
    manifests: dict[int, ModelVersion] = {}
    expected: dict[str, FileEntry] = {}
    received: set[str] = set()
    carried: dict[int, dict[str, dict[str, bytes]]] = {}
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the with below
        members = tar.getmembers()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError) as exc:
        raise ModelshelfError(f"cannot read {where}: {exc}") from None
    with tar, _refusing_damage(where):
        # Check every member's name and type before reading any content.
        for member in members:
            if not member.isreg():
                raise IntegrityError(
                    f"{where}: member {member.name!r} is not a regular file; refusing the bundle"
                )
            known = (
                member.name == BUNDLE_INDEX
                or _MANIFEST_MEMBER.fullmatch(member.name)
                or _BLOB_MEMBER.fullmatch(member.name)
                or _ATTACHED_MEMBER.fullmatch(member.name)
            )
            if not known:
                raise IntegrityError(
                    f"{where}: unexpected member {member.name!r}; refusing the bundle"
                )
        for member in members:
            handle = tar.extractfile(member)
            assert handle is not None
            if member.name == BUNDLE_INDEX and index is None:
                index = _check_index(
                    convert.parse_json(handle.read(convert.MAX_RECORD_BYTES + 1), source=where),
                    where,
                )
            elif (match := _MANIFEST_MEMBER.fullmatch(member.name)) and index is not None:
                record = convert.manifest_from_json(
                    handle.read(convert.MAX_RECORD_BYTES + 1), source=f"{where}/{member.name}"
                )
                if isinstance(record, Tombstone):
                    raise InvalidRecord(f"{where}: {member.name} is a tombstone, not a version")
                manifests[int(match.group(1))] = record
                for entry in record.files:
                    expected[entry.sha256] = entry
            elif (match := _ATTACHED_MEMBER.fullmatch(member.name)) and manifests:
                number, kind, record_id = int(match.group(1)), match.group(2), match.group(3)
                if number not in manifests:
                    raise IntegrityError(
                        f"{where}: {member.name} is attached to no version in the bundle"
                    )
                data = handle.read(attachments.MAX_ATTACHMENT_BYTES + 1)
                if len(data) > attachments.MAX_ATTACHMENT_BYTES:
                    raise IntegrityError(
                        f"{where}: {member.name} is over {attachments.MAX_ATTACHMENT_BYTES} bytes"
                    )
                carried.setdefault(number, {}).setdefault(kind, {})[record_id] = data
            elif (match := _BLOB_MEMBER.fullmatch(member.name)) and manifests:
                blob_entry = expected.get(match.group(1))
                if blob_entry is None:
                    raise IntegrityError(
                        f"{where}: blob {member.name} belongs to no version in the bundle"
                    )
                entry = blob_entry
                if not target.cache.has(entry):
                    target.cache.insert(entry, _chunks(handle), f"{where}/{member.name}")
                received.add(entry.sha256)
            else:
                raise IntegrityError(
                    f"{where}: member {member.name!r} is out of order; refusing the bundle"
                )
    if index is None:
        raise InvalidRecord(f"{where}: no {BUNDLE_INDEX}; is this a modelshelf bundle?")
    missing = set(expected) - received
    if missing:
        raise IntegrityError(
            f"{where}: {len(missing)} blobs are missing from the bundle; it is incomplete"
        )

    report = CopyReport()
    sent = 0
    indexes: dict[str, dict[str, ModelVersion]] = {}
    mapping: dict[tuple[str, int], int] = {}
    attached = 0
    for number, version in sorted(manifests.items()):
        on_target = indexes.setdefault(version.name, _target_index(target, version.name))
        key = _origin_key(origin_of(version))
        if key in on_target:
            report.present[version.ref] = on_target[key].ref
            mapping[(version.name, version.version)] = on_target[key].version
            attached += _carry(target, on_target[key], carried.get(number, {}))
            continue
        blobs = {f.sha256: target.cache.blob_path(f.sha256) for f in version.files}
        published, bytes_sent = _republish(
            target,
            version,
            blobs,
            {
                "kind": "bundle",
                "bundle": path.name,
                "shelf": str(index.get("source", "")),
                "name": version.name,
                "version": version.version,
            },
        )
        sent += bytes_sent
        on_target[key] = published
        report.copied[version.ref] = published.ref
        mapping[(version.name, version.version)] = published.version
        attached += _carry(target, published, carried.get(number, {}))
    if aliases:
        for name, pointers in index["aliases"].items():
            for alias, number in pointers.items():
                mapped = mapping.get((name, number))
                if mapped is not None:
                    current = target.aliases(name).get(alias)
                    if current is None or current.version != mapped:
                        target.set_alias(name, alias, mapped)
                    report.aliases[f"{name}@{alias}"] = mapped
    return attrs.evolve(report, bytes_sent=sent, attached=attached)
