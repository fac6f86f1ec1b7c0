"""Streaming an object out of an object store: resumed after breaks, or in parallel pinned ranges.

:meth:`ObjectStoreStorage.read_stream <modelshelf.objectstore.ObjectStoreStorage.read_stream>`
makes the first request and hands its answer to one of these readers. Both stay in constant memory
and never mix two versions of an object: every later request is pinned to the first answer's etag,
and a replaced object raises instead. Every request goes through the storage's one retry loop
(``_call``) and every failure through its one error entry point (``_error``).
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from .errors import ModelshelfError
from .object_answers import Garbled, MalformedAnswer, ObjectRead

if TYPE_CHECKING:
    from .objectstore import ObjectStoreStorage

__all__ = ["in_ranges", "range_workers", "resumed"]


def range_workers() -> int:
    """Parallel ranged reads per large object (``MODELSHELF_RANGE_WORKERS``, default 4; 1 = off)."""
    try:
        return max(1, int(os.environ.get("MODELSHELF_RANGE_WORKERS", "4")))
    except ValueError:
        return 4


def in_ranges(
    storage: ObjectStoreStorage,
    key: str,
    name: str,
    first: ObjectRead,
    chunk_size: int,
    workers: int,
) -> Iterator[bytes]:
    """The object as ranges of ``storage.range_size`` read by ``workers`` threads, yielded in
    order (the caller hashes them in order). Every range is pinned to the first answer's etag,
    so a replaced object raises instead of mixing two versions; a short or cut range is asked
    again. At most ``workers`` ranges are in flight: memory stays constant."""
    size, step = first.size, storage.range_size
    first.close()  # it gave the size and the etag that pins every range

    def fetch(start: int) -> bytes:
        end = min(start + step, size)

        def read() -> bytes:
            data = storage._read_range(name, start, end, first)
            if len(data) != end - start:
                raise MalformedAnswer(f"got {len(data)} of {end - start} bytes of a range")
            return data

        return storage._call(read, "read", key)

    starts = iter(range(0, size, step))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelshelf-range")
    pending: collections.deque[Future[bytes]] = collections.deque()

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            pending.append(pool.submit(fetch, start))

    try:
        for _ in range(workers):
            submit()
        while pending:
            data = pending.popleft().result()
            submit()
            view = memoryview(data)
            for offset in range(0, len(view), chunk_size):
                yield bytes(view[offset : offset + chunk_size])
            del view, data
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def resumed(
    storage: ObjectStoreStorage, key: str, name: str, reader: ObjectRead, chunk_size: int
) -> Iterator[bytes]:
    """The object in pieces of at most ``chunk_size`` bytes from one streamed answer, resumed at
    the first missing byte when it breaks off (an error, a malformed answer, or a body that ends
    short). ``storage.answer_retry`` bounds the breaks over the whole read."""
    size, pin = reader.size, reader
    offset = failures = 0
    try:
        while True:
            failure: Exception
            try:
                for piece in reader.chunks:
                    if offset + len(piece) > size:  # nothing in this answer can be trusted
                        why = MalformedAnswer(
                            f"{offset + len(piece)} bytes of a {size}-byte object"
                        )
                        raise storage._error(Garbled(why, failures + 1), "read", key)
                    offset += len(piece)
                    if len(piece) <= chunk_size:
                        yield piece
                        continue
                    view = memoryview(piece)
                    for start in range(0, len(view), chunk_size):
                        yield bytes(view[start : start + chunk_size])
                if offset >= size:
                    return
                failure = MalformedAnswer(f"got {offset} of {size} bytes")
            except ModelshelfError:
                raise
            except Exception as exc:
                if not storage._is_malformed(exc):
                    raise storage._error(exc, "read", key) from None
                failure = exc
            failures += 1
            if failures >= storage.answer_retry.attempts:
                raise storage._error(Garbled(failure, failures), "read", key) from None
            storage.answer_retry.sleep(failures)
            reader.close()
            start = offset
            reader = storage._call(
                functools.partial(storage._open_read, name, start, pin, chunk_size), "read", key
            )
    finally:
        reader.close()
