"""Copying a local file with the kernel (``copy_file_range``) and hashing the copy as it grows.

The kernel copies between two files without the bytes passing through this process. On the VMs
we measure on, that costs a tenth of a user-space read-and-write loop: writing from user space
spends most of its time in the kernel taking fresh pages (docs/benchmarks.md). The digest is
computed by reading the copy back, while the copy goes on, so it is the digest of exactly the
bytes stored: the same guarantee as hashing while writing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import threading

#: Bytes per ``copy_file_range`` call: the hash follows the copy at this granularity.
_COPY_CHUNK = 16 << 20
_READ_CHUNK = 1 << 20
#: Errors of a first ``copy_file_range`` that mean "not between these files": copy in user space.
_UNSUPPORTED = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF)


def copy_hashing_in_kernel(source_fd: int, target_fd: int) -> tuple[str, int] | None:
    """Copy ``source_fd`` from its current offset to the empty file ``target_fd`` (open for
    reading and writing) with the kernel, and return the sha256 and size of the copy, read back.

    ``None``, with nothing written, where the kernel cannot copy between these two files (another
    filesystem, an old kernel, not Linux): the caller copies in user space instead.
    """
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return None
    try:
        copied = copy_range(source_fd, target_fd, _COPY_CHUNK)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    hasher = _CopyHasher(target_fd)
    try:
        while copied:
            hasher.reached(copied)
            copied = copy_range(source_fd, target_fd, _COPY_CHUNK)
    except BaseException:
        hasher.abandon()
        raise
    return hasher.finish()


class _CopyHasher:
    """Hashes a growing file on a helper thread, up to the end offsets it is told about."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.end = 0
        self.digest = hashlib.sha256()
        self.error: BaseException | None = None
        self._ends: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="modelshelf-hash", daemon=True)
        self._thread.start()

    def reached(self, copied: int) -> None:
        self.end += copied
        self._ends.put(self.end)

    def _run(self) -> None:
        buffer = memoryview(bytearray(_READ_CHUNK))  # one buffer: no fresh memory per chunk
        offset = 0
        try:
            while (end := self._ends.get()) is not None:
                while offset < end:
                    read = os.preadv(self.fd, [buffer[: min(_READ_CHUNK, end - offset)]], offset)
                    if not read:
                        raise OSError(errno.EIO, "the copy is shorter than what was copied")
                    self.digest.update(buffer[:read])
                    offset += read
        except BaseException as exc:
            self.error = exc
            while self._ends.get() is not None:  # let the copying side finish or give up
                pass

    def finish(self) -> tuple[str, int]:
        self._ends.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.digest.hexdigest(), self.end

    def abandon(self) -> None:
        self._ends.put(None)
        self._thread.join()
