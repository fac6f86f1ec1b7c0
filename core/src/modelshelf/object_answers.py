"""What an object store's primitives answer: the records they return and the signals they raise.

Backends import these names from :mod:`modelshelf.objectstore`, which re-exports them; they live
here so that the base (:mod:`~modelshelf.objectstore`) and its streamed reads
(:mod:`~modelshelf.object_reads`) share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import attrs

from .storage import ObjectInfo

__all__ = [
    "Garbled",
    "ListPage",
    "MalformedAnswer",
    "ObjectRead",
    "Refused",
    "Replaced",
    "TryAgain",
    "Unconfirmed",
]

# --- signals primitives raise ------------------------------------------------------------------


class MalformedAnswer(Exception):
    """An answer the SDK accepted that lacks what every whole answer carries (a size, an etag,
    all of its bytes): the connection was cut inside it. Asked again, then BackendUnavailable.

    Its message is written by the backend and must never quote the answer (it may hold secrets).
    """


class TryAgain(Exception):
    """A write attempt that failed in a way worth repeating (throttled, busy, answer lost).

    ``maybe_applied`` says the service may have applied it anyway: a later refusal of the
    condition is then checked against our own bytes. ``attempts`` caps the tries for this kind of
    failure below the backend's
    :attr:`~modelshelf.objectstore.ObjectStoreStorage.write_retry`. When the tries run out,
    ``cause`` (the SDK exception) is what gets mapped.
    """

    def __init__(
        self, cause: BaseException | None, *, maybe_applied: bool, attempts: int | None = None
    ) -> None:
        super().__init__(type(cause).__name__ if cause is not None else "try again")
        self.cause = cause
        self.maybe_applied = maybe_applied
        self.attempts = attempts


class Refused(Exception):
    """A conditional write's condition did not hold (the key exists, or its etag changed).

    ``retried`` says the SDK sent the request more than once, so the refusal may be of our own
    earlier attempt, whose answer was lost.
    """

    def __init__(self, *, create_only: bool, retried: bool = False) -> None:
        super().__init__("already exists" if create_only else "changed")
        self.create_only = create_only
        self.retried = retried


class Replaced(Exception):
    """A read pinned to an etag found the object replaced or deleted."""


class Garbled(Exception):
    """Answers that stayed malformed after every try (core maps it to BackendUnavailable).

    Raised by core, never by a backend."""

    def __init__(self, last: BaseException, attempts: int) -> None:
        detail = str(last) if isinstance(last, MalformedAnswer) else type(last).__name__
        super().__init__(detail)
        self.attempts = attempts


class Unconfirmed(Exception):
    """A write was sent, but whether the object now holds our bytes cannot be told.

    Raised by core, never by a backend."""


# --- what primitives return --------------------------------------------------------------------


@attrs.frozen
class ObjectRead:
    """An object being read: its size and etag, and its bytes from the requested offset on."""

    size: int
    etag: str
    #: The bytes, in order, in pieces of any size. Ending early, or raising a malformed answer,
    #: makes the caller resume at the first missing byte.
    chunks: Iterator[bytes]
    #: Releases the connection; called whether the read finished or not.
    close: Callable[[], None] = lambda: None


@attrs.frozen
class ListPage:
    """One page of a listing: objects and (for a delimited listing) sub-prefixes, full names."""

    objects: Sequence[ObjectInfo] = ()
    prefixes: Sequence[str] = ()
    #: Where the next page starts; ``None`` or ``""`` on the last page.
    token: str | None = None
