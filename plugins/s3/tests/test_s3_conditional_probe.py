"""A server that ignores If-None-Match / If-Match: real moto behind a header-stripping proxy.

Older MinIO releases and some gateways accept conditional PutObject requests and ignore the
condition. :class:`~modelshelf.testing.faultproxy.FaultProxy` (``strip=CONDITIONAL_HEADERS``) turns the session's moto
server into such a server. Without a check, two writers would both claim version 1 and an alias
compare-and-swap could lose an update; :mod:`modelshelf.write_probe` makes every write refuse such
a storage, in one line, before anything is written, while reads keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf import write_probe
from modelshelf.errors import AlreadyExists, ConditionalWritesUnsupported, PreconditionFailed
from modelshelf.shelf import Shelf
from modelshelf.testing.faultproxy import CONDITIONAL_HEADERS, FaultProxy
from modelshelf.write_probe import PROBE_PREFIX, PROBE_REQUESTS, check_conditional_writes
from modelshelf_s3 import open_storage

ROOT = "team/models"
VERSION_1 = "models/churn/_versions/0000000001.json"


@pytest.fixture(autouse=True)
def _forget_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would: no storage proven yet."""
    monkeypatch.setattr(write_probe, "_verified", set())


@pytest.fixture
def stripping_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """moto behind a proxy that drops If-None-Match and If-Match from every request."""
    with FaultProxy(moto_endpoint, strip=CONDITIONAL_HEADERS) as proxy:
        yield proxy


@pytest.fixture
def counting_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """moto behind a proxy that forwards everything unchanged and counts the requests."""
    with FaultProxy(moto_endpoint, strip=CONDITIONAL_HEADERS) as proxy:
        proxy.enabled = False
        yield proxy


def _open(bucket: str, tmp_path: Path, endpoint: str | None = None) -> Shelf:
    options = {"endpoint_url": endpoint} if endpoint else {}
    return modelshelf.open(f"s3://{bucket}/{ROOT}", cache=tmp_path / "cache", **options)


def _keys(s3_client: Any, bucket: str, below: str = "") -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{ROOT}/{below}")
    return sorted(o["Key"][len(ROOT) + 1 :] for page in pages for o in page.get("Contents", []))


def test_without_the_probe_two_writers_both_claim_version_1(
    bucket: str, stripping_proxy: FaultProxy
) -> None:
    # The hazard itself, at the storage level, through the stripping proxy.
    first = open_storage(f"s3://{bucket}/{ROOT}", endpoint_url=stripping_proxy.endpoint)
    second = open_storage(f"s3://{bucket}/{ROOT}", endpoint_url=stripping_proxy.endpoint)
    try:
        first.put_if_absent(VERSION_1, b'{"writer": "first"}')
        second.put_if_absent(VERSION_1, b'{"writer": "second"}')  # accepted: "first" is lost
        assert first.read(VERSION_1).data == b'{"writer": "second"}'
        # A compare-and-swap on a stale etag is accepted too: an alias update is lost.
        alias = "models/churn/_aliases/prod.json"
        seen = first.put_if_absent(alias, b'{"version": 1}')
        second.put_if_match(alias, b'{"version": 2}', seen)
        first.put_if_match(alias, b'{"version": 3}', seen)
        assert first.read(alias).data == b'{"version": 3}'
    finally:
        first.close()
        second.close()
    assert stripping_proxy.stripped["If-None-Match"] >= 3
    assert stripping_proxy.stripped["If-Match"] >= 2


def test_the_same_writes_on_moto_directly_are_refused(s3_storage: Any) -> None:
    # Proves the proxy, not moto, is what makes the difference above.
    s3_storage.put_if_absent(VERSION_1, b'{"writer": "first"}')
    with pytest.raises(AlreadyExists):
        s3_storage.put_if_absent(VERSION_1, b'{"writer": "second"}')
    seen = s3_storage.put_if_absent("models/churn/_aliases/prod.json", b"1")
    s3_storage.put_if_match("models/churn/_aliases/prod.json", b"2", seen)
    with pytest.raises(PreconditionFailed):
        s3_storage.put_if_match("models/churn/_aliases/prod.json", b"3", seen)


def test_writes_through_the_stripping_proxy_are_refused_and_reads_work(
    bucket: str, s3_client: Any, stripping_proxy: FaultProxy, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x07" * 5000)
    with _open(bucket, tmp_path) as direct:  # a server that honours the conditions
        direct.upload("churn", weights)
    before = _keys(s3_client, bucket)

    shelf = _open(bucket, tmp_path, stripping_proxy.endpoint)
    try:
        for write in (
            lambda: shelf.upload("churn", weights),
            lambda: shelf.upload("fraud", weights),
            lambda: shelf.set_alias("churn", "prod", 1),
        ):
            with pytest.raises(ConditionalWritesUnsupported) as info:
                write()
            message = str(info.value)
            assert "\n" not in message
            assert f"s3://{bucket}/{ROOT}" in message and stripping_proxy.endpoint in message
            assert "(If-None-Match and If-Match accepted but not enforced)" in message
            assert "overwrite each other's versions" in message and "upgrade the server" in message
        # Nothing was written: no manifest, no alias, no blob, and no probe left behind.
        assert _keys(s3_client, bucket) == before
        assert _keys(s3_client, bucket, "models/churn/_versions/") == [VERSION_1]
        # Reads never probe and still work through the same server.
        requests = stripping_proxy.requests
        assert shelf.models() == ["churn"]
        assert [v.version for v in shelf.versions("churn")] == [1]
        assert Path(shelf.load("churn:1")).read_bytes() == b"\x07" * 5000
        assert stripping_proxy.stripped["If-None-Match"] > 0
    finally:
        shelf.close()
    assert stripping_proxy.requests > requests
    assert stripping_proxy.stripped["If-None-Match"] == stripping_proxy.stripped["If-Match"] == 3 * 2


def test_a_direct_connection_passes_the_probe_once_at_its_documented_cost(
    bucket: str, s3_client: Any, counting_proxy: FaultProxy, tmp_path: Path
) -> None:
    storage = open_storage(f"s3://{bucket}/{ROOT}", endpoint_url=counting_proxy.endpoint)
    try:
        check_conditional_writes(storage)
        assert counting_proxy.requests == PROBE_REQUESTS == 5
        check_conditional_writes(storage)  # proven in this process: free from now on
        assert counting_proxy.requests == PROBE_REQUESTS
    finally:
        storage.close()
    assert not _keys(s3_client, bucket, PROBE_PREFIX)


def test_a_shelf_on_a_direct_connection_uploads_and_moves_aliases(
    bucket: str, s3_client: Any, counting_proxy: FaultProxy, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x01" * 3000)
    with _open(bucket, tmp_path, counting_proxy.endpoint) as shelf:
        assert shelf.models() == []
        assert counting_proxy.requests > 0
        shelf.upload("churn", weights)
        after_first = counting_proxy.requests
        shelf.upload("churn", weights)
        shelf.set_alias("churn", "prod", 2)
        assert Path(shelf.load("churn@prod")).read_bytes() == b"\x01" * 3000
    assert counting_proxy.requests > after_first
    # One probe for the whole session, on the first write; the models() read before it did none.
    probing = [(method, path) for method, path in counting_proxy.seen if f"/{PROBE_PREFIX}" in path]
    assert [method for method, _ in probing] == ["PUT", "PUT", "PUT", "PUT", "DELETE"]
    assert _keys(s3_client, bucket, "models/churn/_versions/") == [
        VERSION_1,
        "models/churn/_versions/0000000002.json",
    ]
    assert not _keys(s3_client, bucket, PROBE_PREFIX)
