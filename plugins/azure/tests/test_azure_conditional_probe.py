"""A blob service that ignores If-None-Match / If-Match: real Azurite behind a header-stripping proxy.

Azure's conditional Put Blob uses the same two headers as S3. Through
:class:`~modelshelf.testing.faultproxy.FaultProxy` (``strip=CONDITIONAL_HEADERS``) Azurite
becomes a service that accepts them and ignores them; :mod:`modelshelf.write_probe` must then refuse every write in one
line while reads keep working. The clients use a SAS token: a Shared Key signature covers the
conditional headers, so Azurite would refuse a request whose headers were stripped on the way.
"""

from __future__ import annotations

import datetime as dt
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
from modelshelf_azure.storage import AzureBlobStorage
from modelshelf_azure.testing import DEV_ACCOUNT, DEV_KEY

VERSION_1 = "models/churn/_versions/0000000001.json"


@pytest.fixture(autouse=True)
def _forget_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would: no storage proven yet."""
    monkeypatch.setattr(write_probe, "_verified", set())


@pytest.fixture
def stripping_proxy(azurite_port: int) -> Iterator[FaultProxy]:
    """Azurite behind a proxy that drops If-None-Match and If-Match from every request."""
    with FaultProxy(azurite_port, strip=CONDITIONAL_HEADERS) as proxy:
        yield proxy


@pytest.fixture
def counting_proxy(azurite_port: int) -> Iterator[FaultProxy]:
    """Azurite behind a proxy that forwards everything unchanged and counts the requests."""
    with FaultProxy(azurite_port, strip=CONDITIONAL_HEADERS) as proxy:
        proxy.enabled = False
        yield proxy


@pytest.fixture
def sas_options(container: str) -> Any:
    """``sas_options(proxy)``: storage options reaching the test's container through ``proxy``."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        DEV_ACCOUNT,
        container,
        account_key=DEV_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )

    def options(proxy: FaultProxy) -> dict[str, str]:
        return {"account_url": f"{proxy.endpoint}/{DEV_ACCOUNT}", "sas_token": token}

    return options


def _names(blob_service: Any, container: str, below: str = "") -> list[str]:
    root = "shelves/test/"
    blobs = blob_service.get_container_client(container).list_blobs(name_starts_with=root + below)
    return sorted(blob.name[len(root) :] for blob in blobs)


def test_without_the_probe_two_writers_both_claim_version_1(
    shelf_url: str, stripping_proxy: FaultProxy, sas_options: Any
) -> None:
    first = AzureBlobStorage(shelf_url, **sas_options(stripping_proxy))
    second = AzureBlobStorage(shelf_url, **sas_options(stripping_proxy))
    try:
        first.put_if_absent(VERSION_1, b'{"writer": "first"}')
        second.put_if_absent(VERSION_1, b'{"writer": "second"}')  # accepted: "first" is lost
        assert first.read(VERSION_1).data == b'{"writer": "second"}'
        alias = "models/churn/_aliases/prod.json"
        seen = first.put_if_absent(alias, b'{"version": 1}')
        second.put_if_match(alias, b'{"version": 2}', seen)
        first.put_if_match(alias, b'{"version": 3}', seen)  # stale etag, accepted
        assert first.read(alias).data == b'{"version": 3}'
    finally:
        first.close()
        second.close()
    assert stripping_proxy.stripped["If-None-Match"] >= 3
    assert stripping_proxy.stripped["If-Match"] >= 2


def test_the_same_writes_through_a_plain_proxy_are_refused(
    shelf_url: str, counting_proxy: FaultProxy, sas_options: Any
) -> None:
    # Proves the stripping, not the proxy or the SAS token, is what makes the difference above.
    storage = AzureBlobStorage(shelf_url, **sas_options(counting_proxy))
    try:
        storage.put_if_absent(VERSION_1, b'{"writer": "first"}')
        with pytest.raises(AlreadyExists):
            storage.put_if_absent(VERSION_1, b'{"writer": "second"}')
        seen = storage.put_if_absent("models/churn/_aliases/prod.json", b"1")
        storage.put_if_match("models/churn/_aliases/prod.json", b"2", seen)
        with pytest.raises(PreconditionFailed):
            storage.put_if_match("models/churn/_aliases/prod.json", b"3", seen)
    finally:
        storage.close()


def test_writes_through_the_stripping_proxy_are_refused_and_reads_work(
    container: str,
    shelf_url: str,
    blob_service: Any,
    azurite_connection_string: str,
    stripping_proxy: FaultProxy,
    sas_options: Any,
    tmp_path: Path,
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x07" * 5000)
    cache = tmp_path / "cache"
    with modelshelf.open(shelf_url, cache=cache, connection_string=azurite_connection_string) as direct:
        direct.upload("churn", weights)
    before = _names(blob_service, container)

    shelf: Shelf = modelshelf.open(shelf_url, cache=tmp_path / "cache-2", **sas_options(stripping_proxy))
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
            assert shelf_url in message and stripping_proxy.endpoint in message
            assert "(If-None-Match and If-Match accepted but not enforced)" in message
            assert "overwrite each other's versions" in message and "upgrade the server" in message
        assert _names(blob_service, container) == before
        assert _names(blob_service, container, "models/churn/_versions/") == [VERSION_1]
        requests = stripping_proxy.requests
        assert shelf.models() == ["churn"]
        assert [v.version for v in shelf.versions("churn")] == [1]
        assert Path(shelf.load("churn:1")).read_bytes() == b"\x07" * 5000
        assert stripping_proxy.requests > requests
    finally:
        shelf.close()
    assert stripping_proxy.stripped["If-None-Match"] == stripping_proxy.stripped["If-Match"] == 3 * 2


def test_a_plain_connection_passes_the_probe_once_at_its_documented_cost(
    container: str,
    shelf_url: str,
    blob_service: Any,
    counting_proxy: FaultProxy,
    sas_options: Any,
    tmp_path: Path,
) -> None:
    storage = AzureBlobStorage(shelf_url, **sas_options(counting_proxy))
    try:
        check_conditional_writes(storage)
        assert counting_proxy.requests == PROBE_REQUESTS == 5
        check_conditional_writes(storage)
        assert counting_proxy.requests == PROBE_REQUESTS
    finally:
        storage.close()
    assert not _names(blob_service, container, PROBE_PREFIX)

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x01" * 3000)
    with modelshelf.open(shelf_url, cache=tmp_path / "cache", **sas_options(counting_proxy)) as shelf:
        shelf.upload("churn", weights)
        shelf.set_alias("churn", "prod", 1)
        assert shelf.get("churn@prod").version == 1
    # The second storage object on the same account and URL was proven already: no second probe.
    probing = [method for method, path in counting_proxy.seen if f"/{PROBE_PREFIX}" in path]
    assert probing == ["PUT", "PUT", "PUT", "PUT", "DELETE"]
    assert not _names(blob_service, container, PROBE_PREFIX)
