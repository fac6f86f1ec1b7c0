"""Keeping a shelf healthy: ``gc`` frees blobs nothing references, ``verify`` re-hashes what is
stored and reports every defect (``repair`` removes corrupt blobs so that they can be stored
again). Both may run while others upload, delete and move aliases: deleting follows the protocol
of :mod:`modelshelf.leases`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os

import attrs

from . import eventlog, layout, packing, retention
from .catalog import Catalog, Problem, now
from .errors import InvalidRecord, KeyNotFound, ModelshelfError
from .leases import HeldLease, expired_leases, live_leases, mentioned_blobs
from .records import Blob, FileEntry, ModelVersion, RetentionRule, Tombstone
from .storage import ObjectInfo
from .transfer import run_parallel
from .write_probe import check_conditional_writes

#: How long an unreferenced blob is kept by ``gc``. ``MODELSHELF_GC_GRACE`` overrides it, in seconds.
DEFAULT_GC_GRACE = dt.timedelta(hours=24)
#: A grace period longer than this (about 100 years) is surely a mistake.
_MAX_GRACE_SECONDS = 100 * 365 * 86400.0
#: Blobs deleted between two checks that the gc run record is still fresh.
_GC_BATCH = 256
MISSING_BLOB = "blob is missing"


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
    #: Versions deleted (tombstoned) by retention in this run; their blobs go a grace period later.
    retired: tuple[str, ...] = ()
    #: Bytes those versions held that nothing else on the shelf references.
    retired_bytes: int = 0
    #: Versions retention meant to delete but kept, each with the reason.
    spared: tuple[str, ...] = ()


def gc_grace(grace: dt.timedelta | None) -> dt.timedelta:
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


def referenced_blobs(
    catalog: Catalog, tombstones_after: dt.datetime | None = None
) -> tuple[set[str], list[str]]:
    """Every blob a manifest on the shelf references, and the manifests that could not be parsed.

    Tombstones and deletion flags are not trusted to mean "nothing referenced": every manifest is
    read. A tombstone written after ``tombstones_after`` keeps the blobs it lists (retention's
    grace period). One that cannot be parsed (damaged, or from a newer modelshelf) keeps every sha256 its
    bytes mention, so it can never make gc delete a blob it needs.
    """
    referenced: set[str] = set()
    unreadable: list[str] = []
    for name in catalog.models():
        manifests = catalog.scan_versions(name)[0]

        def read(item: tuple[int, ObjectInfo], name: str = name) -> tuple[set[str], str | None]:
            number, info = item
            try:
                data = catalog.read_record(layout.version_key(name, number), bytes, info.etag)
            except KeyNotFound:
                return set(), None
            try:
                record = catalog.parse_manifest(name, number, data)
            except InvalidRecord as exc:
                return mentioned_blobs(data), f"{name}:{number}: {exc}"
            if isinstance(record, ModelVersion):
                return {b.sha256 for b in record.blobs()}, None
            if (
                isinstance(record, Tombstone)
                and tombstones_after is not None
                and record.deleted_at > tombstones_after
            ):
                return set(record.blobs), None
            return set(), None

        for shas, problem in run_parallel(
            read, sorted(manifests.items()), max_workers=catalog.record_workers
        ):
            referenced |= shas
            if problem:
                unreadable.append(problem)
    return referenced, unreadable


def gc(
    catalog: Catalog,
    *,
    lease_ttl: float,
    dry_run: bool = False,
    grace: dt.timedelta | None = None,
    keep: RetentionRule | None = None,
) -> GcReport:
    """Apply retention (the shelf policy's rule and ``keep``), then sweep unreferenced blobs."""
    grace = gc_grace(grace)
    storage = catalog.storage
    catalog.check_format(create=False)
    if not dry_run:
        check_conditional_writes(storage)  # deletes and leases are writes too
    run = None if dry_run else HeldLease(storage, "gc", ttl=lease_ttl).acquire()
    try:
        # The run record is stored first: an upload that starts later either sees it, or wrote
        # its lease early enough for the listing below to see that.
        current = run.server_now() if run is not None else now()
        rules = retention_rules(catalog, keep)
        retired = retention.apply(catalog, rules, now(), dry_run=dry_run)
        blobs = list(storage.list(layout.BLOBS_PREFIX))
        in_flight: set[str] = set()
        for _, data in live_leases(storage, "upload", lambda: current):
            in_flight |= mentioned_blobs(data)
        cutoff = current - grace
        referenced, unreadable = referenced_blobs(catalog, tombstones_after=cutoff)
        candidates: list[ObjectInfo] = []
        kept_recent = 0
        for info in blobs:
            sha = layout.sha256_of_blob_key(info.key)
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
                run_parallel(storage.delete, [info.key for info in batch])
                removed.extend(batch)
            if not stopped_early:
                # Temporary files and unfinished multipart uploads may belong to a writer still at
                # work: only those older than any live lease can be debris.
                settled = max(grace, dt.timedelta(seconds=10 * lease_ttl))
                storage.cleanup(settled)
                for key in expired_leases(storage, current - settled):
                    if key != run.key:
                        storage.delete(key)
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
        retired=retired.removed,
        retired_bytes=retired.removed_bytes,
        spared=retired.spared,
    )


def retention_rules(catalog: Catalog, keep: RetentionRule | None) -> list[RetentionRule]:
    """The shelf policy's retention rule, and ``keep``: a version goes only if both let it go."""
    from .policy import check_retention, current_policy

    rules = []
    policy = current_policy(catalog)
    if policy is not None and policy.retention is not None:
        rules.append(policy.retention)
    if keep is not None:
        rules.append(check_retention(keep))
    return rules


def _check_blob(catalog: Catalog, entry: Blob) -> str | None:
    """What is wrong with the stored blob ``entry``, re-hashed in full, or ``None``."""
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in catalog.storage.read_stream(layout.blob_key(entry.sha256)):
            digest.update(chunk)
            size += len(chunk)
    except KeyNotFound:
        return MISSING_BLOB
    if size != entry.size:
        return f"blob has {size} bytes, expected {entry.size}"
    if digest.hexdigest() != entry.sha256:
        return "blob content does not match its sha256"
    return None


def remove_corrupt_blobs(catalog: Catalog, entries: list[Blob], *, lease_ttl: float) -> list[str]:
    """Delete blobs that hashed wrong, each checked again first; return the sha256s removed.

    Deleting is what gc does, so it runs under a gc-run record and spares the blobs of live
    uploads: an upload that finds the blob gone stores it again before publishing.
    """
    storage = catalog.storage
    check_conditional_writes(storage)
    removed: list[str] = []
    with HeldLease(storage, "gc", ttl=lease_ttl) as run:
        in_flight: set[str] = set()
        for _, data in live_leases(storage, "upload", run.server_now):
            in_flight |= mentioned_blobs(data)
        for entry in entries:
            key = layout.blob_key(entry.sha256)
            before = storage.stat(key)
            # A second read rules out a read that went wrong on the way; the etag rules out a
            # repair that landed meanwhile.
            if (
                entry.sha256 in in_flight
                or before is None
                or _check_blob(catalog, entry) in (None, MISSING_BLOB)
            ):
                continue
            after = storage.stat(key)
            if after is None or after.etag != before.etag or not run.fresh():
                continue
            storage.delete(key)
            removed.append(entry.sha256)
    return removed


def _walk(catalog: Catalog, problems: list[Problem]) -> list[ModelVersion]:
    """Every live version on the shelf; everything damaged on the way goes to ``problems``."""
    versions: list[ModelVersion] = []
    names, skipped = catalog.scan_models()
    problems.extend(skipped)
    for name in names:
        try:
            numbers, deleted = catalog.scan_versions(name, problems)
            tombstoned: set[int] = set()
            for number, info in sorted(numbers.items()):
                try:
                    record = catalog.manifest(name, number, info.etag)
                except (InvalidRecord, KeyNotFound) as exc:
                    problems.append(
                        Problem(f"{name}:{number}", None, f"unreadable manifest: {exc}")
                    )
                    continue
                if isinstance(record, ModelVersion):
                    versions.append(record)
                    if number in deleted:
                        problems.append(
                            Problem(
                                record.ref,
                                None,
                                "has a deletion flag but a live manifest: listings hide it",
                            )
                        )
                else:
                    tombstoned.add(number)
            aliases, alias_problems = catalog.scan_aliases(name)
            problems.extend(alias_problems)
            for alias in aliases.values():
                if alias.version not in numbers:
                    problems.append(
                        Problem(
                            f"{name}@{alias.alias}",
                            None,
                            f"points to missing version {alias.version}",
                        )
                    )
                elif alias.version in tombstoned:
                    problems.append(
                        Problem(
                            f"{name}@{alias.alias}",
                            None,
                            f"points to deleted version {alias.version}",
                        )
                    )
            problems.extend(eventlog.scan(catalog, name)[1])
        except InvalidRecord as exc:
            problems.append(Problem(name, None, str(exc)))
    return versions


def verify(
    catalog: Catalog, ref: str | None = None, *, repair: bool = False, lease_ttl: float
) -> list[Problem]:
    problems: list[Problem] = []
    versions = [catalog.resolve(ref)] if ref is not None else _walk(catalog, problems)
    unique = {b.sha256: b for v in versions for b in v.blobs()}
    in_packs: dict[str, dict[FileEntry, ModelVersion]] = {}
    for version in versions:
        for entry in version.files:
            if entry.pack is not None:
                in_packs.setdefault(entry.pack, {}).setdefault(entry, version)
    wrong_in_pack: dict[FileEntry, str] = {}

    def check(blob: Blob) -> str | None:
        if blob.sha256 not in in_packs:
            return _check_blob(catalog, blob)
        # A pack is re-hashed whole, and each file in it against its own sha256: a wrong index
        # is a defect of the manifest even when the pack's bytes are intact.
        packed = in_packs[blob.sha256]
        version = next(iter(packed.values()))
        problem, wrong = packing.check_pack(catalog.storage, blob, packed, version)
        wrong_in_pack.update(wrong)
        return problem

    checked: dict[str, str | None] = dict(
        zip(unique, run_parallel(check, unique.values()), strict=True)
    )
    corrupt = [unique[sha] for sha, result in checked.items() if result and result != MISSING_BLOB]
    if repair and corrupt:
        for sha in remove_corrupt_blobs(catalog, corrupt, lease_ttl=lease_ttl):
            checked[sha] = (
                f"{checked[sha]}: removed, so that the next upload or copy of the genuine file stores it again"
            )
    # The local cache's copies too (files, packed or not): a bad one is evicted (the next use
    # fetches it again).
    files = {f.sha256: f for v in versions for f in v.files}
    cached = dict(zip(files, run_parallel(catalog.cache.check, files.values()), strict=True))
    for version in versions:
        for entry in version.files:
            stored = checked.get(entry.pack or entry.sha256)
            if stored:
                problems.append(Problem(version.ref, entry.path, stored))
            elif entry in wrong_in_pack:
                problems.append(Problem(version.ref, entry.path, wrong_in_pack[entry]))
            if cached.get(entry.sha256):
                problems.append(Problem(version.ref, entry.path, cached[entry.sha256] or ""))
    return problems
