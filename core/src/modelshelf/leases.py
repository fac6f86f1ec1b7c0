"""Leases: how uploads and ``gc`` keep each other from losing a published version.

The invariant: **a blob that a published manifest references is never deleted.** ``gc`` may only
delete a blob that no manifest and no live upload references, and an upload never publishes while
a blob it references might still be taken by a sweep that started before it announced itself.

Both sides announce themselves before they look at the other (a create-only record under
``leases/``), and look only after their own announcement is stored; on a store where a listing
sees every write that finished before it (S3, Azure, GCS, a local disk), at least one side of any
overlap therefore sees the other:

upload
    1. write an upload lease naming every blob the version will reference;
    2. list the gc runs that are live;
    3. store the blobs (re-using those already present);
    4. if a gc run was live in step 2, wait until it has ended, then check every blob again and
       store those that are gone;
    5. publish the manifest while the lease is provably fresh, and check that it still is once the
       manifest is stored (else back to 4 with a new lease); then drop the lease.

gc
    1. write a gc-run record;
    2. list the blobs;
    3. list the live upload leases: their blobs are kept;
    4. read every manifest: referenced blobs are kept (a manifest that cannot be parsed keeps every
       sha256 it mentions);
    5. delete the rest that are older than the grace period, while the run record is fresh;
    6. drop the run record.

If an upload's lease was live when gc listed leases (3), its blobs are kept; if it had already
been dropped, the manifest was published first and gc reads it (4). Otherwise the lease was written
after gc's step 3, hence after gc's run record, so the upload sees the run (its step 2), and checks
its blobs again only after the run ended: anything the sweep deleted is stored again before the
manifest appears.

Liveness uses the store's own clock: a lease is live while its stored modification time is less
than its ``ttl`` older than the reader's own freshly written record. Holders rewrite their record
every ``ttl / 6`` and count as fresh only while their last successful rewrite started less than
``ttl / 2`` ago (measured on a monotonic clock). An upload whose lease may have lapsed at any point
before its manifest was stored (the process stalled, say) writes a new lease, waits out running
sweeps and checks every blob again, so an upload needs no timing assumption. A sweep checks that
its run record is fresh before each batch of deletes and stops when it is not; deletes cannot be
taken back, so the one timing assumption left is that a gc process does not stall for more than
``ttl / 2`` between that check and the batch of delete requests that follows it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from . import convert
from .errors import ConflictError, InvalidRecord, KeyNotFound, ModelshelfError, PreconditionFailed
from .layout import LEASES_PREFIX, lease_key, leases_prefix
from .lineage import current_user
from .records import Lease
from .storage import ObjectInfo, Storage

#: An upload lease names the blobs its version will reference; a gc lease marks a running sweep.
LeaseKind = Literal["upload", "gc"]

_SHA256 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
#: Default lease lifetime in seconds (``MODELSHELF_LEASE_SECONDS`` overrides it).
DEFAULT_TTL = 120.0
#: A lease record may not claim a longer life than this, so a planted record cannot block forever.
MAX_TTL = 3600.0
#: How long an upload waits for running gc sweeps before giving up.
DEFAULT_MAX_WAIT = 6 * 3600.0


def default_ttl() -> float:
    configured = os.environ.get("MODELSHELF_LEASE_SECONDS")
    if not configured:
        return DEFAULT_TTL
    try:
        seconds = float(configured)
    except ValueError:
        raise ModelshelfError(
            f"MODELSHELF_LEASE_SECONDS must be a number of seconds, got {configured!r}"
        ) from None
    if not 1 <= seconds <= MAX_TTL:
        raise ModelshelfError(
            f"MODELSHELF_LEASE_SECONDS must be between 1 and {MAX_TTL:.0f}, got {configured!r}"
        )
    return seconds


class HeldLease:
    """A lease this process holds, rewritten by a heartbeat thread while it works."""

    def __init__(
        self,
        storage: Storage,
        kind: LeaseKind,
        *,
        ttl: float,
        name: str | None = None,
        blobs: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.kind = kind
        self.ttl = ttl
        self.name = name
        self.blobs = tuple(sorted(set(blobs)))
        self.clock = clock
        self.key = ""
        self._etag: str | None = None
        self._fresh_since = float("-inf")
        self._lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def acquire(self) -> HeldLease:
        """Store a new lease record (create-only) and start keeping it fresh."""
        self._write_new()
        self._thread = threading.Thread(
            target=self._beat, name=f"modelshelf-{self.kind}-lease", daemon=True
        )
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and drop the record (best effort: a leftover record simply expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(ModelshelfError):
            self.storage.delete(self.key)

    def __enter__(self) -> HeldLease:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    def renew(self) -> None:
        """Start over with a brand-new record, after the old one may have lapsed."""
        with self._lock:
            old = self.key
            self._write_new()
        with contextlib.suppress(ModelshelfError):
            self.storage.delete(old)

    # --- freshness -------------------------------------------------------------------------

    def fresh(self) -> bool:
        """True while every reader still takes this lease for live, with a margin of ``ttl / 2``."""
        with self._lock:
            return not self._lost and self.clock() - self._fresh_since < self.ttl / 2

    def refresh(self) -> None:
        """Rewrite the record so its stored modification time moves forward."""
        with self._lock:
            if self._lost:
                return
            started = self.clock()
            try:
                self._etag = self.storage.put_if_match(self.key, self._data(), self._etag or "")
            except (PreconditionFailed, KeyNotFound):
                self._lost = True  # removed by a sweep that took it for dead: it may have lapsed
                return
            self._fresh_since = started

    def server_now(self) -> dt.datetime:
        """The store's clock, as close to now as one request can tell (our record's mtime)."""
        info = self.storage.stat(self.key)
        if info is None or info.modified is None:
            return dt.datetime.now(dt.UTC)
        return info.modified

    # --- internals -------------------------------------------------------------------------

    def _data(self) -> bytes:
        return convert.to_json(self._record)

    def _write_new(self) -> None:
        lease_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(8)}"
        self._record = Lease(
            kind=self.kind,
            id=lease_id,
            started_at=dt.datetime.now(dt.UTC),
            by=current_user(),
            ttl_seconds=self.ttl,
            name=self.name,
            blobs=self.blobs,
        )
        self.key = lease_key(self.kind, lease_id)
        started = self.clock()
        self._etag = self.storage.put_if_absent(self.key, self._data())
        self._fresh_since = started
        self._lost = False

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 6):
            with contextlib.suppress(ModelshelfError):
                self.refresh()


def live_leases(
    storage: Storage, kind: LeaseKind, now: Callable[[], dt.datetime]
) -> Iterator[tuple[ObjectInfo, bytes]]:
    """Leases of ``kind`` that are live at ``now()`` (store time; asked once, only if a lease
    exists), with their stored bytes.

    A record that cannot be parsed (damaged, or written by a newer modelshelf) is live for
    :data:`DEFAULT_TTL`; callers that need its blobs take every sha256 its bytes mention.
    """
    current: dt.datetime | None = None
    for info in storage.list(leases_prefix(kind)):
        if not info.key.endswith(".json"):
            continue
        if current is None:
            current = now()
        try:
            data = storage.read(info.key).data
        except KeyNotFound:
            continue  # dropped since the listing
        try:
            record = convert.from_json(data, Lease, source=info.key)
            ttl = min(MAX_TTL, record.ttl_seconds) if record.ttl_seconds > 0 else DEFAULT_TTL
        except InvalidRecord:
            ttl = DEFAULT_TTL
        if info.modified is None or info.modified >= current - dt.timedelta(seconds=ttl):
            yield info, data


def mentioned_blobs(data: bytes) -> set[str]:
    """Every sha256 (64 lowercase hex digits) that stored bytes mention, parsed or not.

    Used where keeping too much is harmless and deleting too much is not: the blobs of a live
    lease, or of a manifest this modelshelf cannot parse.
    """
    return {match.decode() for match in _SHA256.findall(data)}


def wait_for_gc_runs(
    lease: HeldLease,
    *,
    poll: float,
    max_wait: float = DEFAULT_MAX_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until no gc run that could delete blobs is live any more."""
    started = lease.clock()
    while any(True for _ in live_leases(lease.storage, "gc", lease.server_now)):
        if lease.clock() - started > max_wait:
            raise ConflictError(
                f"a gc run on {lease.storage.url} has been running for over {max_wait / 3600:.0f} hours; "
                "this upload waited for it to finish and gives up: try again later"
            )
        sleep(poll)


def expired_leases(storage: Storage, older_than: dt.datetime) -> list[str]:
    """Keys of lease records (any kind) last written before ``older_than``: their holders are gone."""
    return [
        info.key
        for info in storage.list(LEASES_PREFIX)
        if info.modified is not None and info.modified < older_than
    ]
