"""Refuse to write to a storage that accepts conditional writes but ignores their conditions.

Everything a shelf promises concurrent writers rests on two conditional writes: a version number
is claimed by creating its manifest with ``put_if_absent`` (``If-None-Match: *`` on S3 and Azure),
and an alias moves by compare-and-swap with ``put_if_match`` (``If-Match: <etag>``). Some
S3-compatible servers (older MinIO releases, some gateways and proxies) accept those headers and
drop them: every write then succeeds, two uploads both "claim" version 1 and the later manifest
replaces the earlier one, and one of two concurrent alias moves is lost. Nothing fails, so nothing
would ever tell.

:func:`check_conditional_writes` finds out before the first write of a process to a storage.
Under a fresh random key in the reserved ``probes/`` area below the shelf root (model keys all live
under ``models/``, blobs under ``blobs/``, so a probe can never touch a model), it

1. creates the probe object with ``put_if_absent``;
2. creates it again, which must be refused with :class:`~modelshelf.errors.AlreadyExists`;
3. replaces it with ``put_if_match`` on its current etag, which must succeed;
4. replaces it again on the etag of step 3's predecessor, now stale, which must be refused with
   :class:`~modelshelf.errors.PreconditionFailed`;
5. deletes it (best effort: a left-over probe is a few bytes that nothing reads).

Cost: **5 requests** (4 writes of about 100 bytes and 1 delete), paid once per process per storage,
on the first write only; reads never probe, and later writes cost one set lookup. A storage that
ignores either condition raises :class:`~modelshelf.errors.ConditionalWritesUnsupported`, and the
result is not remembered, so a server upgraded while a process runs is accepted on its next write.

Storages whose ``local`` flag is set (the filesystem backend) are not probed: their conditions are
enforced by this process through the operating system (``os.link``, lock files), not by a remote
service that could drop them, and a probe would leave an empty ``probes/`` directory behind.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Callable

from .errors import (
    AccessDenied,
    AlreadyExists,
    ConditionalWritesUnsupported,
    ModelshelfError,
    PreconditionFailed,
    StorageError,
)
from .layout import PROBES_PREFIX as PROBE_PREFIX
from .layout import probe_key
from .storage import Storage

__all__ = ["PROBE_PREFIX", "PROBE_REQUESTS", "check_conditional_writes"]

#: The reserved area below a shelf root where probe objects are written and deleted.
#: How many storage requests one probe makes (retries inside a backend not counted).
PROBE_REQUESTS = 5

#: Identities (see :func:`_identity`) of storages whose conditional writes were proven in this
#: process. Only successes are kept: a refusal is re-checked on the next write.
_verified: set[str] = set()
_verified_lock = threading.Lock()


def check_conditional_writes(storage: Storage) -> None:
    """Prove that ``storage`` honours create-only and compare-and-swap writes, once per process.

    Returns when it does (or when it cannot be checked, see below). Raises
    :class:`~modelshelf.errors.ConditionalWritesUnsupported` when a write that had to be refused
    was accepted, and any :class:`~modelshelf.errors.StorageError` the storage raises otherwise.

    When the very first probe write is refused for lack of permission (a read-only shelf, or a
    policy that allows writes only below ``models/`` and ``blobs/``), nothing is proven and nothing
    is raised: the caller's own write then fails or succeeds exactly as it would without a probe.
    """
    if storage.local:
        return
    identity = _identity(storage)
    with _verified_lock:
        if identity in _verified:
            return
    # Concurrent first writers in one process may each probe once; their keys differ, and holding
    # the lock across network requests would serialise unrelated storages behind a slow one.
    if _probe(storage):
        with _verified_lock:
            _verified.add(identity)


def _identity(storage: Storage) -> str:
    # The URL alone is not enough: one s3:// URL can be served by different endpoints (an
    # endpoint_url option), and describe() names the endpoint without credentials.
    kind = type(storage)
    return f"{kind.__module__}.{kind.__qualname__} {storage.describe()}"


def _probe(storage: Storage) -> bool:
    """Run the probe; True when both conditions held, False when permissions stopped it."""
    key = probe_key(secrets.token_hex(16))
    nonce = secrets.token_hex(8)

    def payload(step: str) -> bytes:
        # Every write carries different bytes: a backend that retried a write whose answer was
        # lost recognises its own earlier write by its bytes, and must never mistake step 2's
        # refused duplicate for step 1's landed create.
        return json.dumps(
            {"modelshelf": "conditional-write probe", "nonce": nonce, "step": step}
        ).encode()

    try:
        created = storage.put_if_absent(key, payload("create"))
    except AccessDenied:
        return False
    except (AlreadyExists, PreconditionFailed) as exc:
        # A fresh random key cannot exist; callers treat these as lost races and retry, so a
        # misbehaving answer must not leave here under that name.
        raise _unexpected(storage, "create", exc) from None
    try:
        ignored = _conditions_ignored(storage, key, created, payload)
    finally:
        with contextlib.suppress(ModelshelfError):
            storage.delete(key)
    if ignored:
        raise ConditionalWritesUnsupported(
            f"storage {storage.describe()} ignores conditional writes "
            f"({' and '.join(ignored)} accepted but not enforced), so concurrent writers could "
            "overwrite each other's versions and alias updates: modelshelf refuses to write to "
            "it; upgrade the server or use one that supports conditional writes "
            "(If-None-Match / If-Match)"
        )
    return True


def _conditions_ignored(
    storage: Storage, key: str, etag: str, payload: Callable[[str], bytes]
) -> list[str]:
    """Steps 2 to 4 on the existing probe object ``key`` (etag ``etag``): the conditions ignored."""
    ignored: list[str] = []
    try:
        etag = storage.put_if_absent(key, payload("create again"))
    except AlreadyExists:
        pass
    else:
        ignored.append("If-None-Match")
    try:
        swapped = storage.put_if_match(key, payload("swap"), etag)
    except (AlreadyExists, PreconditionFailed) as exc:
        if ignored:
            return ignored  # already reason enough to refuse; a muddled swap adds nothing
        raise _unexpected(storage, "compare-and-swap on the current etag", exc) from None
    if swapped == etag:
        # Then a stale etag cannot be told from the current one: no compare-and-swap is possible.
        raise StorageError(
            f"conditional-write check on {storage.describe()}: a replaced object kept its etag, "
            "so compare-and-swap cannot detect a concurrent writer; use a storage whose etags "
            "change on every write"
        )
    try:
        storage.put_if_match(key, payload("stale swap"), etag)
    except PreconditionFailed:
        pass
    else:
        ignored.append("If-Match")
    return ignored


def _unexpected(storage: Storage, step: str, exc: ModelshelfError) -> StorageError:
    return StorageError(
        f"conditional-write check on {storage.describe()}: the {step} of a fresh probe object "
        f"under {PROBE_PREFIX} was refused ({exc}); check the storage service and try again"
    )
