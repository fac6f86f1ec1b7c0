"""The Storage interface a backend implements.

A backend is a thin wrapper around one storage service. Keys are ``/``-separated paths relative to
the shelf root; core never builds a key a backend has to sanitise, but a backend must still refuse
keys that are empty, absolute, or contain ``..`` segments (:func:`check_key`).

Contract every backend honours (``modelshelf.testing.StorageContract`` checks it):

* ``put_if_absent`` is atomic create-only: of N concurrent callers on one key exactly one wins and
  the others get :class:`~modelshelf.errors.AlreadyExists`.
* ``put_if_match`` is atomic compare-and-swap on the etag returned by ``read``/``stat``/``put_*``:
  a stale etag gets :class:`~modelshelf.errors.PreconditionFailed` and nothing is written.
* A reader never sees a partially written object under its final key.
* ``list`` returns every key below a prefix, however many (pagination is the backend's job).
* Missing keys raise :class:`~modelshelf.errors.KeyNotFound` from ``read``/``read_stream``, and
  ``stat`` returns ``None``.
* Errors a user can act on are raised as :class:`~modelshelf.errors.StorageError` subclasses
  naming the shelf URL, never with a credential in the message.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import attrs

from .errors import InvalidName

#: Default chunk size for streamed reads.
CHUNK_SIZE = 1 << 20


@attrs.frozen
class ObjectInfo:
    """What a listing or a stat knows about one object."""

    key: str
    size: int
    #: Opaque token that changes whenever the object is replaced; used for compare-and-swap.
    etag: str
    modified: dt.datetime | None = None


@attrs.frozen
class StoredBytes:
    """A small object read whole, with the etag to compare-and-swap it later."""

    data: bytes
    etag: str


def check_key(key: str) -> str:
    """Refuse keys that could escape the shelf root. Returns the key unchanged."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidName(f"invalid storage key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidName(f"invalid storage key {key!r}")
    return key


class Storage(abc.ABC):
    """Primitives a shelf needs from a storage service. Core builds the registry on top."""

    #: The shelf root URL, as the user wrote it (without credentials). Used in messages.
    url: str
    #: True when reads are local and cheap (a filesystem): core then reads records directly
    #: instead of through the local record cache, and without a thread pool.
    local: bool = False

    # --- reads -----------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, key: str) -> StoredBytes:
        """Return the whole content of a small object and its etag."""

    @abc.abstractmethod
    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the content of an object in chunks, in order, in constant memory."""

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        """Return ``size`` bytes of an object from ``offset`` (fewer when the object ends first).

        Used to read one small file out of a pack. The default reads the stream up to the range;
        backends with ranged reads may override it.
        """
        wanted = bytearray()
        position = 0
        stream = self.read_stream(key)
        try:
            for chunk in stream:
                end = position + len(chunk)
                if end > offset:
                    wanted += chunk[max(0, offset - position) : offset + size - position]
                position = end
                if len(wanted) >= size:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a stream left half-read releases its connection now
        return bytes(wanted)

    def local_path(self, key: str) -> Path | None:
        """A file on this machine holding exactly the stored bytes of ``key``, or ``None``.

        Lets a copy to another shelf read a blob in place instead of fetching it into the cache
        first. Callers never trust it: whatever stores its bytes verifies them (``put_blob``).
        The default (every remote store) is ``None``.
        """
        return None

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Return what is known of an object, or ``None`` when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix`` (recursively), in any order."""

    @abc.abstractmethod
    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Yield the immediate "sub-directories" below ``prefix`` (which ends with ``/``).

        Each yielded value is a full key prefix ending with ``/``, like ``models/churn/``.
        """

    # --- writes ----------------------------------------------------------------------------

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file, streamed, replacing any existing object.

        Used for content-addressed blobs, where a replacement has identical content. Large files
        should use the service's multipart or parallel upload. The object must not become visible
        under ``key`` until it is complete.
        """

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        """Store the local file ``path`` as the content-addressed blob ``key``, verified.

        The object must hold exactly ``size`` bytes whose sha256 is ``sha256``, or nothing new may
        become visible under ``key``: when the bytes read from ``path`` differ (the file changed
        after it was hashed, say a training job still writing its checkpoint), raise
        :class:`~modelshelf.errors.ChangedWhileUploading` and leave any existing object alone.

        The default reads ``path`` once into a private temporary copy while hashing it, checks the
        digest, then sends the stable copy with :meth:`put_file`. Backends override it to verify
        without the extra local copy (hash while writing, commit only on a match).
        """
        from .transfer import stable_copy  # keeps this module free of threads and hashing

        with stable_copy(path, sha256, size) as stable:
            self.put_file(key, stable)

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key`` with ``data`` only if it does not exist; return the new etag.

        Raises :class:`~modelshelf.errors.AlreadyExists` when the key exists.
        """

    @abc.abstractmethod
    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` only if its current etag is ``etag``; return the new etag.

        Raises :class:`~modelshelf.errors.PreconditionFailed` when the object changed or vanished.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object. Deleting a missing key is not an error."""

    # --- optional housekeeping ----------------------------------------------------------------

    def touch(self, key: str) -> None:  # noqa: B027 - optional, a no-op where unsupported
        """Refresh an existing object's modification time, restarting ``gc``'s grace period.

        Called when an upload reuses a blob that already exists, so that a concurrent ``gc`` does
        not take the blob for an orphan. Backends that cannot do it cheaply may leave it a no-op:
        the uploader re-checks its blobs after publishing anyway.
        """

    def cleanup(self, older_than: dt.timedelta) -> None:  # noqa: B027 - optional
        """Remove debris of crashed writers (temporary files, stale multipart uploads) older than
        ``older_than``. Called by ``gc`` when not in dry-run mode."""

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and threads. The storage is not used afterwards."""

    def describe(self) -> str:
        """A short human description for messages, without credentials."""
        return self.url
