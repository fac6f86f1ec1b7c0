"""Getting a version's files back: into the local cache (verified while streaming), into a
directory the user names, or into memory through the serializer that saved them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import layout, packing
from .catalog import Catalog
from .errors import (
    FlaggedByScan,
    IntegrityError,
    KeyNotFound,
    ModelshelfError,
    NoSerializer,
    UntrustedFormat,
)
from .plugins import explain_missing_serializer, get_registry
from .records import FileEntry, ModelVersion
from .terminal import install_hint, serializer_package
from .transfer import Progress, counted, run_parallel


def fetch(
    catalog: Catalog, version: ModelVersion, files: Iterable[FileEntry] | None = None
) -> None:
    """Make sure every file of ``version`` is in the local cache, verified while streaming.

    Files already cached are not re-hashed here: every use of a cached blob verifies it (see
    :mod:`modelshelf.cache`). ``files`` fetches those files again even when cached (the cache
    evicted a bad copy); a packed one among them is read alone, by a ranged read of its pack.
    Otherwise each pack holding a missing file is read once, whole (:mod:`modelshelf.packing`).
    """
    cache = catalog.cache
    if files is not None:
        missing = {f.sha256: f for f in files}
    else:
        missing = {f.sha256: f for f in version.files if not cache.has(f)}
    for f in version.files:
        if f.sha256 not in missing:
            cache.touch(f.sha256)
    if files is None:
        fetch_packs(catalog, version, [f for f in missing.values() if f.pack is not None])
        missing = {sha: f for sha, f in missing.items() if f.pack is None}
    with Progress(sum(f.size for f in missing.values()), f"download {version.ref}") as progress:

        def get(entry: FileEntry) -> None:
            what = f"{version.ref}/{entry.path}"
            local = local_file(catalog, entry)
            if local is not None and cache.insert_copy(entry, local, what):
                progress.update(entry.size)
                return
            cache.insert(entry, counted(blob_stream(catalog, version, entry), progress), what)

        run_parallel(get, missing.values())


def fetch_packs(catalog: Catalog, version: ModelVersion, packed: list[FileEntry]) -> None:
    """Put the packed files ``packed`` into the cache, reading each of their packs once, whole."""
    if not packed:
        return
    packs = {f.pack for f in packed}
    total = sum(p.size for p in version.packs if p.sha256 in packs)
    with Progress(total, f"download {version.ref}") as progress:
        packing.fetch_packed(catalog.storage, catalog.cache, version, packed, progress)


def local_file(catalog: Catalog, entry: FileEntry) -> Path | None:
    """The shelf's own file of ``entry``'s blob when the shelf is on this machine (unverified:
    the kernel copies it and the copy is hashed), else ``None``; never for a packed file."""
    if entry.pack is not None:
        return None
    return catalog.storage.local_path(layout.blob_key(entry.sha256))


def blob_stream(catalog: Catalog, version: ModelVersion, entry: FileEntry) -> Iterable[bytes]:
    """The stored bytes of ``entry`` (unverified: the cache verifies while it writes); a packed
    file's come from a ranged read of its pack."""
    if entry.pack is not None:
        return (packing.read_packed(catalog.storage, version, entry),)
    try:
        return catalog.storage.read_stream(layout.blob_key(entry.sha256))
    except KeyNotFound:
        raise IntegrityError(
            f"{version.ref}: blob of {entry.path!r} ({entry.sha256[:12]}...) is missing "
            f"from shelf {catalog.url}; run `modelshelf verify`"
        ) from None


def download(
    catalog: Catalog,
    version: ModelVersion,
    dest: str | os.PathLike[str],
    *,
    link: bool = False,
    keep_cache: bool = False,
) -> Path:
    dest_path = Path(dest)
    if dest_path.exists() and not dest_path.is_dir():
        raise ModelshelfError(f"download destination {dest_path} exists and is not a directory")
    cache = catalog.cache
    what = version.ref

    def refill(entry: FileEntry) -> None:
        fetch(catalog, version, (entry,))

    if link:
        fetch(catalog, version)  # a bad shelf copy fails here, before dest is touched
        cache.materialize(version.files, dest_path, link=True, what=what, refill=refill)
        return dest_path
    # Files the cache lacks are streamed once into dest (and into the cache when kept), verified
    # (on a mismatch nothing is kept); cached ones are copied out, verified. Packs holding files
    # the cache lacks are fetched into the cache first, verified whole (a damaged pack fails
    # before dest is touched), and their files written from there, each verified on its own.
    missing: dict[str, FileEntry] = {}
    for entry in version.files:
        if entry.sha256 in missing:
            continue
        if cache.has(entry):
            cache.touch(entry.sha256)
        else:
            missing[entry.sha256] = entry
    packed = [f for f in missing.values() if f.pack is not None]
    packs = {f.pack for f in packed}
    total = sum(f.size for f in missing.values() if f.pack is None)
    total += sum(p.size for p in version.packs if p.sha256 in packs)
    with (
        Progress(total, f"download {what}") as progress,
        packing.opened_packs(catalog.storage, cache, version, packed, progress) as unpacked,
    ):
        cache.materialize(
            version.files,
            dest_path,
            link=False,
            what=what,
            stream=lambda entry: counted(blob_stream(catalog, version, entry), progress),
            keep_streamed=keep_cache,
            local=lambda entry: local_file(catalog, entry),
            unpacked=unpacked,
            refill=refill,
        )
    return dest_path


#: The ``trust`` value that also loads a version whose pickle scan flagged dangerous imports.
IGNORE_SCAN = "ignore-scan"


def load(
    catalog: Catalog, version: ModelVersion, *, trust: bool | str = False, **options: Any
) -> Any:
    if isinstance(trust, str) and trust != IGNORE_SCAN:
        raise ModelshelfError(f"trust must be True, False or {IGNORE_SCAN!r}, got {trust!r}")
    info = version.serializer
    entry = get_registry().serializers().get(info.name)
    if entry is None:
        explained = explain_missing_serializer(info.name, info.distribution)
        if explained:
            raise NoSerializer(f"{version.ref}: {explained}")
        raise NoSerializer(
            f"{version.ref} was saved by serializer {info.name!r} from "
            f"{serializer_package(info.distribution)} {info.distribution_version!r}: "
            f"{install_hint(info.distribution)}"
        )
    serializer = entry.serializer
    if not (serializer.safe and info.safe) and not trust:
        raise UntrustedFormat(
            f"{version.ref} is stored as {serializer.unsafe_part(info.details)}, and loading it can "
            "run code stored in the files: load it with trust=True only if you trust whoever uploaded it"
        )
    if (
        not (serializer.safe and info.safe)
        and version.scan is not None
        and version.scan.dangerous
        and trust != IGNORE_SCAN
    ):
        from .scanning import describe

        raise FlaggedByScan(
            f"{version.ref}: the pickle scan at upload flagged {describe(version.scan)}; loading it runs "
            f"that code: load with trust={IGNORE_SCAN!r} only if you know why it is there"
        )
    trust = bool(trust)
    cache = catalog.cache
    fetch(catalog, version)

    def refill(file: FileEntry) -> None:
        fetch(catalog, version, (file,))

    if not serializer.records_framework:
        # It returns the files themselves: hand out a private, verified copy, never the shared
        # cache's inodes (an in-place edit would reach every later load).
        copy = cache.private_copy(version.files, refill=refill, what=version.ref)
        return serializer.load(copy, details=info.details, trust=trust, **options)
    digest = hashlib.sha256(
        "\n".join(f"{f.path}\0{f.sha256}" for f in version.files).encode()
    ).hexdigest()
    directory = cache.snapshot(digest, version.files, refill=refill, what=version.ref)
    loaded = serializer.load(directory, details=info.details, trust=trust, **options)
    directory = directory.absolute()
    private: list[Path] = []

    def privately(value: Any) -> Any:
        """Paths into the shared snapshot become paths into one private copy (see above)."""
        if type(value) is dict:  # a several-model version's mapping; never a model's own type
            return {key: privately(item) for key, item in value.items()}
        if isinstance(value, os.PathLike):
            returned = Path(value).absolute()
            if returned == directory or directory in returned.parents:
                if not private:
                    private.append(
                        cache.private_copy(version.files, refill=refill, what=version.ref)
                    )
                return private[0] / returned.relative_to(directory)
        return value

    return privately(loaded)
