"""Create-only writes and compare-and-swap in a directory shelf, by claim files.

* **No partial object is visible.** Every write goes to a hidden temporary file beside its key
  first and becomes visible by one atomic ``link`` or ``rename``.
* **Create-only** is ``link(temp, key)``, which fails when ``key`` exists: exactly one writer wins,
  on NFS too.
* **Compare-and-swap needs no lock.** A key's value is a chain: the file at the key, then the
  hidden *claims* ``.~<name>.<etag>.next``, each holding the value that replaced the object whose
  etag it names. Replacing etag ``E`` is one create-only ``link(temp, claim(E))``: of all writers
  holding ``E``, exactly one can create it. A reader starts at the key and follows claims until
  none exists; what it ends on is the current value. Claims are never removed while their chain is
  live, so a claim can never be created twice for a value that was current, and a writer with a
  stale etag always meets an existing claim. After linking, the writer checks its claim extends
  the live chain (it does not when the key was deleted or its etag is long gone: then it removes
  the claim and fails), and finally renames its temporary file over the key so chains stay short.
  That rename is only a shortcut for readers: a late one that puts an older value back at the key
  is harmless, since the chain still leads from it to the current value.
* **Locks only save work.** Where ``flock`` works, writers of one key queue on a hidden lock file
  (:func:`flock_key`), so the shortcut renames happen in order and chains stay one step long. On
  filesystems where ``flock`` silently does nothing (some NFS, SMB, Lustre, GPFS mounts)
  correctness does not change.

The etag is ``<inode>-<mtime_ns>-<size>``. Rename keeps the inode and mtime, so an object keeps
its etag when the shortcut rename moves it to the key. Small records get their mtime set from the
nanosecond clock, because the kernel's own timestamps are coarse (milliseconds) and a freed inode
is soon reused: a new object must never repeat the etag of one a claim still names.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import NoReturn

from ..errors import AlreadyExists, PreconditionFailed, StorageError
from .filesystem_dirs import (
    CLOEXEC,
    HIDDEN_PREFIX,
    NOFOLLOW,
    ShelfDirectory,
    new_temp,
    unlink_quietly,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: A chain longer than this means claims that loop (a corrupted shelf): refuse rather than spin.
MAX_CHAIN = 100_000

#: The name of a claim: ``.~<name>.<etag>.next``.
CLAIM = re.compile(r"^\.~(?P<name>.+)\.(?P<etag>\d+-\d+-\d+)\.next$")

#: ``lock(dir_fd, name)``: serialise writers of the key ``name`` in the directory ``dir_fd``.
KeyLock = Callable[[int, str], AbstractContextManager[None]]


def etag(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def claim_name(name: str, etag: str) -> str:
    return f"{HIDDEN_PREFIX}{name}.{etag}.next"


@contextlib.contextmanager
def flock_key(dir_fd: int, name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the key's hidden lock file, where the filesystem has one."""
    try:
        fd = os.open(
            f"{HIDDEN_PREFIX}{name}.lock",
            os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC,
            0o644,
            dir_fd=dir_fd,
        )
    except OSError:
        yield  # no lock file (read-only directory, a link planted there): the lock is only a speed-up
        return
    try:
        if fcntl is not None:
            with contextlib.suppress(
                OSError
            ):  # ENOLCK on NFS without a lock daemon: go on unlocked
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock; a dead process's lock goes with it


# --- reading a key's value: the file at the key, then its claims ------------------------------


def loop_error(shelf: ShelfDirectory, key: str) -> StorageError:
    return StorageError(f"cannot read {key!r}: its claim files in shelf {shelf.root} form a loop")


def open_value(
    shelf: ShelfDirectory, dir_fd: int, name: str, key: str
) -> tuple[int, os.stat_result] | None:
    """Open the current value of ``key``: follow its claims from the file at the key to the last."""
    found = shelf.open_object(dir_fd, name, key, key)
    if found is None:
        return None
    fd, st = found
    for _ in range(MAX_CHAIN):
        # Claims are immutable and kept while their chain is live: holding a descriptor of each
        # step, the walk always moves forward to the value current when the last lookup failed.
        nxt = shelf.open_object(dir_fd, claim_name(name, etag(st)), key, key)
        if nxt is None:
            return fd, st
        os.close(fd)
        fd, st = nxt
    os.close(fd)
    raise loop_error(shelf, key)


def chain(
    shelf: ShelfDirectory, dir_fd: int, name: str, key: str, action: str = "read"
) -> list[os.stat_result]:
    """Stats of every step of ``key``'s value chain, the current value last; empty when missing."""
    steps: list[os.stat_result] = []
    current = name
    for _ in range(MAX_CHAIN):
        try:
            st = os.stat(current, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return steps
        except OSError as exc:
            raise shelf.error(exc, action, key) from None
        shelf.check_regular(st, action, key, key)
        steps.append(st)
        current = claim_name(name, etag(st))
    raise loop_error(shelf, key)


# --- writing a value ---------------------------------------------------------------------------


def write_record(
    shelf: ShelfDirectory, dir_fd: int, name: str, data: bytes, key: str, *, fsync: bool
) -> tuple[str, os.stat_result]:
    """Write ``data`` to a temporary file beside ``name``; return its name and final stat."""
    temp = ""
    try:
        temp, fd = new_temp(dir_fd, name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # A fine-grained mtime makes the etag unique even when the inode of a just-replaced
            # object is reused within one coarse kernel timestamp tick.
            now = time.time_ns()
            os.utime(fd, ns=(now, now))
            if fsync:
                os.fsync(fd)
            return temp, os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if temp:
            unlink_quietly(dir_fd, temp)
        raise shelf.error(exc, "write", key) from None


def create(
    shelf: ShelfDirectory, dir_fd: int, name: str, key: str, data: bytes, *, fsync: bool
) -> str:
    """Create ``key`` holding ``data`` unless it exists (:class:`AlreadyExists`); its etag."""
    temp, st = write_record(shelf, dir_fd, name, data, key, fsync=fsync)
    try:
        os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        shelf.refuse_non_object(dir_fd, name, "write", key)
        raise AlreadyExists(f"{key} already exists in shelf {shelf.root}") from None
    except OSError as exc:
        raise shelf.error(exc, "write", key) from None
    finally:
        unlink_quietly(dir_fd, temp)
    return etag(st)


def raise_stale(shelf: ShelfDirectory, key: str) -> NoReturn:
    raise PreconditionFailed(f"{key} changed since it was read (shelf {shelf.root})")


def swap(
    shelf: ShelfDirectory,
    dir_fd: int,
    name: str,
    key: str,
    data: bytes,
    expected: str,
    *,
    fsync: bool,
    lock: KeyLock,
) -> str:
    """Replace ``key``'s value of etag ``expected`` by ``data`` (:class:`PreconditionFailed` when
    that is not its value any more); the new etag."""
    # Cheap early answer: an etag that is not the current value's never will be again.
    steps = chain(shelf, dir_fd, name, key, "write")
    if not steps or etag(steps[-1]) != expected:
        raise_stale(shelf, key)
    temp, st = write_record(shelf, dir_fd, name, data, key, fsync=fsync)
    new = etag(st)
    claim = claim_name(name, expected)
    try:
        with lock(dir_fd, name):
            try:
                # The commit point: create-only, so one writer alone replaces the value `expected`.
                os.link(temp, claim, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                raise_stale(shelf, key)
            except OSError as exc:
                raise shelf.error(exc, "write", key) from None
            try:
                live = extends_live_chain(shelf, dir_fd, name, key, expected, new)
            except BaseException:
                unlink_quietly(dir_fd, claim)  # we cannot tell: leave the value as it was
                raise
            if not live:
                # `expected` was not in the chain any more (the key was deleted, or its claim
                # cleaned up long ago): nobody can reach our claim, so removing it is safe.
                unlink_quietly(dir_fd, claim)
                raise_stale(shelf, key)
            # The shortcut: readers find the value at the key without following the claim.
            with contextlib.suppress(OSError):
                os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return new
    finally:
        unlink_quietly(dir_fd, temp)


def extends_live_chain(
    shelf: ShelfDirectory, dir_fd: int, name: str, key: str, expected: str, new: str
) -> bool:
    """Whether our claim (replacing ``expected`` by ``new``) is part of the key's live chain."""
    seen = {etag(st) for st in chain(shelf, dir_fd, name, key, "write")}
    if expected in seen or new in seen:
        return True
    # The key's shortcut may already point past our value: then someone built on it, and that
    # claim, named after our etag, exists (nobody else can know our etag before it is live).
    try:
        os.stat(claim_name(name, new), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


# --- what crashed writers leave behind ---------------------------------------------------------


def cleanup_folder(
    shelf: ShelfDirectory, dir_fd: int, names: list[str], temp_cutoff: float, claim_cutoff: float
) -> None:
    """Remove the temporary files older than ``temp_cutoff`` and the claims off their key's live
    chain older than ``claim_cutoff`` from one directory (never lock files)."""
    claims: dict[str, list[tuple[str, str]]] = {}
    for entry in names:
        if not entry.startswith(HIDDEN_PREFIX):
            continue
        if entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                if st.st_mtime < temp_cutoff:
                    os.unlink(entry, dir_fd=dir_fd)
        elif match := CLAIM.match(entry):
            claims.setdefault(match["name"], []).append((entry, match["etag"]))
    for name, found in claims.items():
        with contextlib.suppress(OSError, StorageError):
            steps = chain(shelf, dir_fd, name, name)
            live = {etag(st) for st in steps}
            # The key's ctime is when the shortcut last moved: only long after that can no
            # stalled reader or writer still hold a step behind it.
            if steps and steps[0].st_ctime >= claim_cutoff:
                continue
            for entry, claimed in found:
                if claimed in live:
                    continue
                st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                if max(st.st_mtime, st.st_ctime) < claim_cutoff:
                    os.unlink(entry, dir_fd=dir_fd)
