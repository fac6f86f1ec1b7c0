"""Dropped connections: reads resume or retry, retried conditional writes stay exactly-once.

A small TCP proxy sits between the client and moto and cuts the first connection after a given
number of response bytes, like a flaky network or a load balancer timing out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from modelshelf.errors import AlreadyExists, BackendUnavailable
from modelshelf_s3 import open_storage

MiB = 1 << 20
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class CuttingProxy:
    """Forward TCP to ``target``; the first connection is closed after ``cut_after`` bytes back."""

    def __init__(self, target: str, cut_after: int) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.cut_after = cut_after
        self.connections = 0
        self.cuts = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            budget = self.cut_after if self.connections == 1 else None
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(upstream, client, budget), daemon=True
            ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                # "100 Continue" interim answers (boto3 sends "Expect: 100-continue" on PUT)
                # come before the server acts; only the final answer counts against the budget.
                while budget is not None and sent == 0 and data.startswith(_CONTINUE):
                    sink.sendall(_CONTINUE)
                    data = data[len(_CONTINUE) :]
                if not data:
                    continue
                if budget is not None and sent + len(data) >= budget:
                    sink.sendall(data[: budget - sent])
                    self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closing = True
        self.server.close()


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(moto_endpoint, cut_after=1 * MiB)
    yield proxy
    proxy.close()


@pytest.fixture
def answer_lost(moto_endpoint: str) -> Iterator[CuttingProxy]:
    """The first request reaches moto and is applied, but its answer never comes back."""
    proxy = CuttingProxy(moto_endpoint, cut_after=0)
    yield proxy
    proxy.close()


def test_dropped_connection_is_resumed_with_a_range(bucket: str, proxy: CuttingProxy) -> None:
    payload = bytes(range(256)) * (12 * 4096)  # 12 MiB, position-dependent bytes
    direct = open_storage(f"s3://{bucket}/p")
    direct.put_if_absent("blob", payload)

    storage = open_storage(f"s3://{bucket}/p", endpoint_url=proxy.endpoint)
    ranges: list[Any] = []
    storage.client.meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **kw: ranges.append(params.get("Range")),
    )
    got = b"".join(storage.read_stream("blob", chunk_size=256 * 1024))
    assert proxy.cuts == 1
    assert got == payload
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    storage.close()


def test_object_replaced_during_a_drop_is_not_spliced(bucket: str, proxy: CuttingProxy) -> None:
    direct = open_storage(f"s3://{bucket}/p")
    direct.put_if_absent("blob", b"A" * (4 * MiB))

    storage = open_storage(f"s3://{bucket}/p", endpoint_url=proxy.endpoint)

    def replace_before_resume(params: dict[str, Any], **kw: Any) -> None:
        if params.get("Range"):
            info = direct.stat("blob")
            assert info is not None
            direct.put_if_match("blob", b"B" * (4 * MiB), info.etag)

    storage.client.meta.events.register("provide-client-params.s3.GetObject", replace_before_resume)
    received = bytearray()
    with pytest.raises(BackendUnavailable, match="replaced or deleted while it was being read"):
        for chunk in storage.read_stream("blob", chunk_size=64 * 1024):
            received += chunk
    assert set(received) == {ord("A")}  # only bytes of the first object were ever yielded
    assert 0 < len(received) < 4 * MiB
    storage.close()


def test_read_retries_a_body_cut_short(bucket: str, proxy: CuttingProxy) -> None:
    payload = bytes(range(256)) * (3 * 4096)  # 3 MiB
    open_storage(f"s3://{bucket}/p").put_if_absent("record", payload)
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=proxy.endpoint)
    assert storage.read("record").data == payload
    assert proxy.cuts == 1
    storage.close()


def count_puts(storage: Any) -> list[int]:
    sent: list[int] = []
    storage.client.meta.events.register("before-send.s3.PutObject", lambda **kw: sent.append(1))
    return sent


def test_create_only_write_whose_answer_was_lost_is_still_ours(
    bucket: str, answer_lost: CuttingProxy
) -> None:
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=answer_lost.endpoint)
    sent = count_puts(storage)
    etag = storage.put_if_absent("models/m/_versions/0000000001.json", b'{"by": "me"}')
    assert answer_lost.cuts == 1
    assert len(sent) == 2  # botocore retried, and the retry's If-None-Match failed on our write
    stored = storage.read("models/m/_versions/0000000001.json")
    assert (stored.data, stored.etag) == (b'{"by": "me"}', etag)
    storage.close()


def test_create_only_write_lost_to_another_writer_is_refused(
    bucket: str, answer_lost: CuttingProxy
) -> None:
    direct = open_storage(f"s3://{bucket}/p")
    direct.put_if_absent("taken.json", b'{"by": "other"}')
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=answer_lost.endpoint)
    storage.read("taken.json")  # the cut falls on this read, which is retried
    with pytest.raises(AlreadyExists):
        storage.put_if_absent("taken.json", b'{"by": "me"}')
    storage.close()


def test_compare_and_swap_whose_answer_was_lost_is_still_ours(
    bucket: str, answer_lost: CuttingProxy
) -> None:
    direct = open_storage(f"s3://{bucket}/p")
    first = direct.put_if_absent("alias.json", b"1")
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=answer_lost.endpoint)
    sent = count_puts(storage)
    etag = storage.put_if_match("alias.json", b"2", first)
    assert answer_lost.cuts == 1 and len(sent) == 2
    assert direct.read("alias.json").data == b"2"
    assert direct.read("alias.json").etag == etag
    storage.close()
