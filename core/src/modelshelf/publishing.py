"""Publishing a version: store its blobs, then claim the next number with its manifest.

A version is visible only once its manifest exists, and the manifest is written only after every
blob it references is stored, under an upload lease that keeps ``gc`` away from them (see
:mod:`modelshelf.leases` for the protocol and the invariant it keeps). The number is claimed with
a create-only write; a writer that loses the race takes the next one. A write whose answer was
lost is read back, so a retried publish never yields two versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from . import convert, eventlog, layout, packing
from .catalog import Catalog, now
from .errors import AlreadyExists, ConflictError, ModelshelfError, StorageError
from .leases import HeldLease, live_leases, wait_for_gc_runs
from .records import ModelVersion
from .refs import MAX_VERSION, check_name
from .transfer import Progress, run_parallel

_MAX_ATTEMPTS = 1000


@attrs.frozen
class Published:
    """What one publish did."""

    version: ModelVersion
    #: Bytes of blobs sent; blobs the shelf already held are not sent again.
    bytes_sent: int


class Publisher:
    """Publishes versions to one shelf, remembering the next number to try for each model."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.storage = catalog.storage
        self._next_version: dict[str, int] = {}

    def publish(
        self, draft: ModelVersion, blobs: Mapping[str, Path], *, lease_ttl: float, lease_poll: float
    ) -> Published:
        """Publish ``draft`` as the next version of its model; ``blobs`` maps each file's sha256 to
        a local copy, used to store any blob the shelf lacks. Small files are packed anew
        (:mod:`modelshelf.packing`), whether or not ``draft`` came with packs."""
        check_name(draft.name)
        self.catalog.check_format(create=True)
        missing = [f.sha256 for f in draft.files if f.sha256 not in blobs]
        if missing:
            raise ModelshelfError(
                f"no local copy of blob {missing[0]} given to publish {draft.name}"
            )
        with packing.packed(draft, blobs) as (packed, with_packs):
            return self._publish(packed, with_packs, lease_ttl=lease_ttl, lease_poll=lease_poll)

    def _publish(
        self, draft: ModelVersion, blobs: Mapping[str, Path], *, lease_ttl: float, lease_poll: float
    ) -> Published:
        size = len(convert.to_json(draft))
        if size > convert.MAX_RECORD_BYTES // 2:  # half: readers refuse records over the limit
            raise ModelshelfError(
                f"the manifest of {draft.name} would be {size} bytes (limit {convert.MAX_RECORD_BYTES // 2}): "
                "metadata, params and signatures describe a model; store large data as files "
                "(extra_files=...)"
            )
        needed = {b.sha256: blobs[b.sha256] for b in draft.blobs()}
        sizes = {b.sha256: b.size for b in draft.blobs()}
        with HeldLease(
            self.storage, "upload", ttl=lease_ttl, name=draft.name, blobs=needed
        ) as lease:
            sweep_seen = any(True for _ in live_leases(self.storage, "gc", lease.server_now))
            sent = self._store_blobs(needed, sizes)
            published: ModelVersion | None = None
            while True:
                if sweep_seen:
                    wait_for_gc_runs(lease, poll=lease_poll)
                    sent += self._store_missing_blobs(needed, sizes)
                if published is None:
                    published = self._claim_number(draft, lease)
                if published is not None and lease.fresh():
                    break
                # The lease may have lapsed (the process stalled) and a sweep taken it for dead:
                # take a new one, wait out running sweeps and store again whatever they took,
                # before publishing or, if the manifest is already out, before reporting it.
                lease.renew()
                sweep_seen = True
        eventlog.append(self.catalog, draft.name, "upload", version=published.version)
        return Published(published, sent)

    def _store_blobs(self, blobs: Mapping[str, Path], sizes: Mapping[str, int]) -> int:
        """Store the blobs the shelf does not have yet, verified; return the bytes sent.

        A blob already present with the right size is re-used (identical content is stored once).
        """
        with Progress(sum(sizes.values()), "upload") as progress:

            def put(sha: str) -> int:
                key = layout.blob_key(sha)
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
            key = layout.blob_key(sha)
            existing = self.storage.stat(key)
            if existing is not None and existing.size == sizes[sha]:
                return 0
            self.storage.put_blob(key, blobs[sha], sha, sizes[sha])
            return sizes[sha]

        return sum(run_parallel(check, sorted(blobs)))

    def _claim_number(self, draft: ModelVersion, lease: HeldLease) -> ModelVersion | None:
        """Claim the next version number by creating its manifest; retry on a lost race.

        Returns ``None``, having written nothing, as soon as ``lease`` is no longer provably fresh.
        """
        # A writer publishing repeatedly tries the number after its last one without listing
        # (create-only makes a stale guess safe); otherwise, or after losing, it lists.
        numbers = self.catalog.version_numbers
        candidate = self._next_version.get(draft.name) or max(numbers(draft.name), default=0) + 1
        for attempt in range(_MAX_ATTEMPTS):
            if candidate > MAX_VERSION:
                raise ModelshelfError(
                    f"{draft.name} already has a version numbered {MAX_VERSION:,}, the largest a version "
                    "can have: upload under another name (if that version was not published on purpose, "
                    "someone wrote it into the shelf directly: delete it and check who can write there)"
                )
            if not lease.fresh():
                return None
            record = attrs.evolve(draft, version=candidate, created_at=now())
            key = layout.version_key(draft.name, candidate)
            data = convert.to_json(record)
            try:
                self.storage.put_if_absent(key, data)
            except AlreadyExists:
                if not self.catalog.holds(key, data):
                    # Someone took this number. Re-list now and then: under heavy contention a
                    # writer that only counts up would lag behind the others.
                    candidate = (
                        max(numbers(draft.name), default=candidate) + 1
                        if attempt % 8 == 7
                        else candidate + 1
                    )
                    continue
            except StorageError:
                if not self.catalog.holds(key, data):
                    raise
            self._next_version[draft.name] = candidate + 1
            return record
        raise ConflictError(
            f"could not claim a version number for {draft.name} after {_MAX_ATTEMPTS} attempts"
        )
