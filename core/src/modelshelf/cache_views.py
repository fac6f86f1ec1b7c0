"""What loads read from the cache (see :mod:`modelshelf.cache`): shared snapshots, and private copies.

Private copies are what loads that return paths into their files hand out.
A hardlinked snapshot would hand the caller the cache's own inodes: an in-place edit (as root, or
after a ``chmod``) would change what every other holder of that path sees and cost every later load
a download. A private copy makes the returned files the caller's own, and an edit can never reach
the cache. The copy is verified while it is made, which costs about what the hash every use pays
anyway, plus the disk space.

A private copy belongs to one process: loading the same files again returns the same directory
while it still holds their exact bytes (re-hashed each time), else a fresh copy, leaving the edited
one alone. Copies are removed when the process exits; those of processes that died on this host
are removed by the next private copy and by :meth:`~modelshelf.cache.Cache.clear_temp`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
from pathlib import Path

from .cache import TEMP_PREFIX, Cache, Refill
from .errors import ModelshelfError
from .records import FileEntry
from .refs import check_file_path
from .transfer import run_parallel
from .verified_files import digest_no_follow, listing


def snapshot(
    cache: Cache,
    manifest_digest: str,
    files: tuple[FileEntry, ...],
    *,
    refill: Refill | None = None,
    what: str = "",
) -> Path:
    """:meth:`Cache.snapshot`."""
    final = cache.root / "snapshots" / manifest_digest
    verified: set[tuple[int, int]] = set()
    if _snapshot_is_good(cache, final, files, verified):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        temp = final.with_name(f"{TEMP_PREFIX}{manifest_digest}.{secrets.token_hex(6)}")
        try:
            cache.place(files, temp, link=True, refill=refill, what=what, verified=verified)
            _dir_identities(temp, files, verified)  # every entry was verified by _place
            with contextlib.suppress(OSError):
                os.rename(temp, final)  # fails when a stale snapshot (or a racing build) is there
            if temp.exists():
                if _snapshot_is_good(cache, final, files, verified):
                    return final  # another process built it from the blobs verified here
                trash = final.with_name(
                    f"{TEMP_PREFIX}trash-{manifest_digest}.{secrets.token_hex(6)}"
                )
                with contextlib.suppress(FileNotFoundError):
                    os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
                os.rename(temp, final)
            return final
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    raise ModelshelfError(
        f"could not build the snapshot {final}: other processes keep replacing it"
    )


def _lists_exactly(directory: Path, files: tuple[FileEntry, ...]) -> bool:
    """``directory`` exists and holds the paths of ``files``, nothing more or less."""
    try:
        return listing(directory) == {check_file_path(f.path) for f in files}
    except FileNotFoundError:
        return False


def _snapshot_is_good(
    cache: Cache, directory: Path, files: tuple[FileEntry, ...], verified: set[tuple[int, int]]
) -> bool:
    if not _lists_exactly(directory, files):
        return False

    def good(entry: FileEntry) -> bool:
        path = directory.joinpath(*check_file_path(entry.path).split("/"))
        try:
            st = os.lstat(path)
            blob = os.stat(cache.blob_path(entry.sha256))
        except FileNotFoundError:
            return False
        identity = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode) or identity != (blob.st_dev, blob.st_ino):
            return False  # not (or no longer) the blob: rebuilding links and hashes the blob
        if identity in verified:
            return True
        digest, size, opened = digest_no_follow(path)
        if opened == identity and (digest, size) == (entry.sha256, entry.size):
            verified.add(identity)
            return True
        cache.evict(entry.sha256)  # the entry is the blob's own inode: the blob is bad
        return False

    unique = {check_file_path(f.path): f for f in files}
    return all(run_parallel(good, unique.values()))


def _dir_identities(
    directory: Path, files: tuple[FileEntry, ...], verified: set[tuple[int, int]]
) -> None:
    for entry in files:
        st = os.lstat(directory.joinpath(*check_file_path(entry.path).split("/")))
        verified.add((st.st_dev, st.st_ino))


def private_copy(
    cache: Cache, files: tuple[FileEntry, ...], *, refill: Refill | None, what: str
) -> Path:
    """See :meth:`Cache.private_copy`."""
    key = (cache.root.absolute(), _files_key(files))
    known = _PRIVATE.get(key)
    if known is not None and _tree_holds(known, files):
        return known
    base = cache.root / "private"
    sweep_dead_private_copies(base)
    directory = base / f"{_host_tag()}-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        cache.materialize(files, directory, link=False, refill=refill, what=what)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _PRIVATE.add(key, directory)
    return directory


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


class _PrivateCopies:
    """This process's private copies, by (cache root, files), removed when the process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = -1
        self._latest: dict[tuple[Path, str], Path] = {}
        self._all: list[Path] = []

    def _claim(self) -> None:
        # Called with the lock held. A forked child starts with no copies: the parent owns them.
        if self._owner != os.getpid():
            self._owner = os.getpid()
            self._latest.clear()
            self._all.clear()
            atexit.register(self._remove_all, self._owner)

    def get(self, key: tuple[Path, str]) -> Path | None:
        with self._lock:
            self._claim()
            return self._latest.get(key)

    def add(self, key: tuple[Path, str], directory: Path) -> None:
        with self._lock:
            self._claim()
            self._latest[key] = directory
            self._all.append(directory)

    def _remove_all(self, owner: int) -> None:
        if os.getpid() != owner:  # a forked child exiting must not remove its parent's copies
            return
        with self._lock:
            for directory in self._all:
                shutil.rmtree(directory, ignore_errors=True)
            self._all.clear()
            self._latest.clear()


_PRIVATE = _PrivateCopies()


def _files_key(files: tuple[FileEntry, ...]) -> str:
    return hashlib.sha256("\n".join(f"{f.path}\0{f.sha256}" for f in files).encode()).hexdigest()


def _tree_holds(directory: Path, files: tuple[FileEntry, ...]) -> bool:
    """``directory`` holds exactly ``files``, as regular files with their recorded bytes."""
    if not _lists_exactly(directory, files):
        return False

    def good(entry: FileEntry) -> bool:
        try:
            digest, size, _ = digest_no_follow(
                directory.joinpath(*check_file_path(entry.path).split("/"))
            )
        except OSError:
            return False
        return (digest, size) == (entry.sha256, entry.size)

    return all(run_parallel(good, files))


def sweep_dead_private_copies(base: Path) -> None:
    """Remove private copies whose process (on this host) is gone, e.g. after a crash or kill -9."""
    prefix = f"{_host_tag()}-"
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(base / name, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
