"""Local files written and checked for the cache: verified copies, a tee, no-follow digests.

Nothing here trusts a file: every copy is hashed while it is written, and a digest never follows a
symbolic link (what is hashed must be exactly the inode handed out).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from .kernel_copy import copy_hashing_in_kernel
from .records import Blob, FileEntry
from .transfer import VerifyingWriter, check_digest

_CHUNK = 1 << 20


def digest_no_follow(path: Path) -> tuple[str, int, tuple[int, int]]:
    """sha256, size and (device, inode) of the regular file at ``path``, which is never followed."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink where a file should be: never what was verified
            return "", -1, (-1, -1)
        raise
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "", -1, (st.st_dev, st.st_ino)
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell(), (st.st_dev, st.st_ino)


class Tee:
    """A write-only file that writes every chunk to two files.

    A failed write names the file it failed on (a failed ``write()`` names none), so that a full
    cache is not reported as a full destination.
    """

    def __init__(self, first: BinaryIO, second: BinaryIO) -> None:
        self.files = (first, second)

    def write(self, chunk: bytes) -> None:
        for handle in self.files:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.filename is None:
                    exc.filename = handle.name
                raise


def copy_file_verified(source: Path, entry: FileEntry, target: Path, what: str) -> None:
    """Copy ``source`` to the new file ``target``, checking it against ``entry`` as it goes."""
    with (
        open(source, "rb") as reader,
        open(target, "xb") as handle,
        VerifyingWriter(handle, entry.sha256, entry.size, what) as writer,
    ):
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)
        writer.finish()


def copy_in_kernel_verified(source: Path, entry: FileEntry | Blob, target: Path, what: str) -> bool:
    """Copy ``source`` to the new file ``target`` with the kernel and check the copy against
    ``entry`` (:class:`~modelshelf.errors.IntegrityError` on a mismatch, nothing left behind).

    ``False``, with nothing left behind, where the kernel cannot copy between these files.
    """
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with open(source, "rb", buffering=0) as reader:
            done = copy_hashing_in_kernel(reader.fileno(), fd)
        if done is not None:
            check_digest(what, done, entry.sha256, entry.size)
    except BaseException:
        os.close(fd)
        os.unlink(target)
        raise
    os.close(fd)
    if done is None:
        os.unlink(target)
        return False
    return True


def listing(directory: Path) -> set[str]:
    """Relative ``/`` paths of everything below ``directory`` that is not a real directory."""
    found: set[str] = set()
    for folder, dirs, names in os.walk(directory, onerror=_raise):
        relative = Path(folder).relative_to(directory)
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(folder, d)))]:
            found.add((relative / name).as_posix())
    return found


def _raise(exc: OSError) -> None:
    raise exc


def missing_parents(path: Path) -> list[Path]:
    """The directories ``mkdir(parents=True)`` would create for ``path``, outermost first."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]


def is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
