"""Dropped connections: reads resume or retry, retried conditional writes stay exactly-once.

:class:`~modelshelf.testing.faultproxy.FaultProxy` sits between the client and moto and cuts an
answer, like a flaky network or a load balancer timing out. The backend-independent promises are
in the fault contract (``test_s3_fault_contract.py``); these are the S3-specific ones: the ranged
resume, and botocore's own retry of a write whose answer was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from modelshelf.errors import BackendUnavailable
from modelshelf.testing.faultproxy import FaultProxy
from modelshelf_s3 import open_storage

MiB = 1 << 20


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """moto behind a proxy; the first answer body longer than 1 MiB is cut after 1 MiB."""
    with FaultProxy(moto_endpoint) as proxy:
        proxy.cut_body(MiB)
        yield proxy


@pytest.fixture
def answer_lost(moto_endpoint: str) -> Iterator[FaultProxy]:
    """The first PUT reaches moto and is applied, but its answer never comes back."""
    with FaultProxy(moto_endpoint) as proxy:
        proxy.lose_answers(when="PUT")
        yield proxy


def test_dropped_connection_is_resumed_with_a_range(bucket: str, proxy: FaultProxy) -> None:
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
    assert proxy.injected["cut-body"] == 1
    assert got == payload
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    storage.close()


def test_object_replaced_during_a_drop_is_not_spliced(bucket: str, proxy: FaultProxy) -> None:
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


def count_puts(storage: Any) -> list[int]:
    sent: list[int] = []
    storage.client.meta.events.register("before-send.s3.PutObject", lambda **kw: sent.append(1))
    return sent


def test_create_only_write_whose_answer_was_lost_is_still_ours(
    bucket: str, answer_lost: FaultProxy
) -> None:
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=answer_lost.endpoint)
    sent = count_puts(storage)
    etag = storage.put_if_absent("models/m/_versions/0000000001.json", b'{"by": "me"}')
    assert answer_lost.injected["lose-answer"] == 1
    assert len(sent) == 2  # botocore retried, and the retry's If-None-Match failed on our write
    stored = storage.read("models/m/_versions/0000000001.json")
    assert (stored.data, stored.etag) == (b'{"by": "me"}', etag)
    storage.close()


def test_compare_and_swap_whose_answer_was_lost_is_still_ours(
    bucket: str, answer_lost: FaultProxy
) -> None:
    direct = open_storage(f"s3://{bucket}/p")
    first = direct.put_if_absent("alias.json", b"1")
    storage = open_storage(f"s3://{bucket}/p", endpoint_url=answer_lost.endpoint)
    sent = count_puts(storage)
    etag = storage.put_if_match("alias.json", b"2", first)
    assert answer_lost.injected["lose-answer"] == 1 and len(sent) == 2
    assert direct.read("alias.json").data == b"2"
    assert direct.read("alias.json").etag == etag
    storage.close()
