"""Answers cut inside their header block, over HTTP against a real Azurite behind a proxy.

A cut answer looks complete to ``http.client`` but lacks some headers and its body. The SDK then
raises plain ValueError / TypeError / AttributeError or hands back ``None`` sizes and etags. The
backend must retry such answers and either return exactly the stored data or raise one clear
:class:`~modelshelf.errors.BackendUnavailable` naming the account, never a raw SDK exception.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelshelf.errors import BackendUnavailable
from modelshelf.retry import Backoff
from modelshelf.testing.faultproxy import FaultProxy, Request
from modelshelf_azure.storage import AzureBlobStorage
from modelshelf_azure.testing import DEV_KEY, connection_string

CHUNK = 64 * 1024


@pytest.fixture
def cut_storage(fault_proxy: FaultProxy, shelf_url: str) -> Iterator[AzureBlobStorage]:
    """The test's shelf, reached through ``fault_proxy``, with small ranges and blocks."""
    storage = AzureBlobStorage(
        shelf_url,
        connection_string=connection_string(fault_proxy.port),
        max_chunk_get_size=CHUNK,
        max_single_put_size=CHUNK,
        max_block_size=CHUNK,
        results_per_page=2,
    )
    yield storage
    storage.close()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AzureBlobStorage, "answer_retry", Backoff(attempts=4, first=0.01))


def _assert_unavailable(error: BaseException, storage: AzureBlobStorage) -> None:
    assert isinstance(error, BackendUnavailable), repr(error)
    message = str(error)
    assert "\n" not in message
    assert storage.account_url in message
    assert "malformed or truncated answer" in message
    assert DEV_KEY not in message and DEV_KEY[:20] not in message


@pytest.mark.parametrize("header", ["Content-Length", "ETag", "Last-Modified"])
def test_stat_retries_an_answer_cut_once(
    header: str,
    fault_proxy: FaultProxy,
    az_storage: AzureBlobStorage,
    cut_storage: AzureBlobStorage,
) -> None:
    written = az_storage.put_if_absent("k.json", b"x" * 1234)
    fault_proxy.cut_headers(header, when="HEAD")
    info = cut_storage.stat("k.json")
    assert fault_proxy.injected["cut-headers"], "nothing was cut: the test proved nothing"
    assert info is not None
    assert (info.size, info.etag) == (1234, written)


@pytest.mark.parametrize("header", ["Content-Length", "ETag"])
def test_stat_cut_every_time_is_backend_unavailable(
    header: str,
    fault_proxy: FaultProxy,
    az_storage: AzureBlobStorage,
    cut_storage: AzureBlobStorage,
) -> None:
    # Before the fix: TypeError int(None) for a lost size, and an etag read as '"None"'.
    az_storage.put_if_absent("k.json", b"x" * 10)
    fault_proxy.cut_headers(header, when="HEAD", times=100)
    with pytest.raises(BackendUnavailable) as info:
        cut_storage.stat("k.json")
    _assert_unavailable(info.value, cut_storage)
    assert fault_proxy.injected["cut-headers"] == AzureBlobStorage.answer_retry.attempts


@pytest.mark.parametrize("header", ["Content-Range", "Content-Length", "ETag"])
def test_read_retries_an_answer_cut_once(
    header: str,
    fault_proxy: FaultProxy,
    az_storage: AzureBlobStorage,
    cut_storage: AzureBlobStorage,
) -> None:
    data = os.urandom(3 * CHUNK + 17)  # several ranged GETs
    az_storage.put_if_absent("blob.bin", data)
    fault_proxy.cut_headers(header, when="GET")
    stored = cut_storage.read("blob.bin")
    assert fault_proxy.injected["cut-headers"]
    assert stored.data == data
    assert stored.etag == az_storage.stat("blob.bin").etag  # type: ignore[union-attr]


def test_read_cut_every_time_is_backend_unavailable(
    fault_proxy: FaultProxy, az_storage: AzureBlobStorage, cut_storage: AzureBlobStorage
) -> None:
    # Before the fix: the SDK's ValueError 'Required Content-Range response header is missing'.
    az_storage.put_if_absent("blob.bin", b"y" * 100)
    fault_proxy.cut_headers("Content-Range", when="GET", times=100)
    with pytest.raises(BackendUnavailable) as info:
        cut_storage.read("blob.bin")
    _assert_unavailable(info.value, cut_storage)


@pytest.mark.parametrize("nth", [1, 3])
def test_read_stream_resumes_after_a_range_cut_short(
    nth: int, fault_proxy: FaultProxy, az_storage: AzureBlobStorage, cut_storage: AzureBlobStorage
) -> None:
    """The ``nth`` ranged GET loses its Content-Length, so its body reads as empty. The SDK would
    go on with the next range and return the blob shifted; the stream must resume instead."""
    data = os.urandom(5 * CHUNK + 99)
    az_storage.put_if_absent("big.bin", data)
    seen = 0

    def nth_get(request: Request) -> bool:
        nonlocal seen
        if request.method != "GET":
            return False
        seen += 1
        return seen == nth

    fault_proxy.cut_headers("Content-Length", when=nth_get)
    pieces = list(cut_storage.read_stream("big.bin", chunk_size=10_000))
    assert fault_proxy.injected["cut-headers"] == 1
    assert all(0 < len(piece) <= 10_000 for piece in pieces)
    assert b"".join(pieces) == data


def test_read_stream_of_a_blob_replaced_while_resuming_raises(
    fault_proxy: FaultProxy, az_storage: AzureBlobStorage, cut_storage: AzureBlobStorage
) -> None:
    az_storage.put_if_absent("big.bin", os.urandom(3 * CHUNK))
    seen = 0

    def second_get(request: Request) -> bool:
        nonlocal seen
        seen += request.method == "GET"
        return request.method == "GET" and seen == 2

    fault_proxy.cut_headers("Content-Length", when=second_get)
    stream = cut_storage.read_stream("big.bin")
    first = next(stream)
    az_storage.put_if_match("big.bin", b"new", az_storage.stat("big.bin").etag)  # type: ignore[union-attr]
    with pytest.raises(Exception) as info:
        b"".join([first, *stream])
    assert type(info.value).__module__ == "modelshelf.errors"
    assert "replaced while being downloaded" in str(info.value)


def test_list_retries_a_page_cut_short(
    fault_proxy: FaultProxy, az_storage: AzureBlobStorage, cut_storage: AzureBlobStorage
) -> None:
    keys = [f"m/{i:02d}.bin" for i in range(7)]
    for key in keys:
        az_storage.put_if_absent(key, key.encode())
    seen = 0

    def second_page(request: Request) -> bool:
        nonlocal seen
        seen += request.method == "GET"
        return request.method == "GET" and seen == 2

    fault_proxy.cut_headers("Content-Type", when=second_page)
    listed = list(cut_storage.list("m/"))
    assert fault_proxy.injected["cut-headers"] == 1
    assert [info.key for info in listed] == keys
    assert all(info.size == len(info.key) for info in listed)


@pytest.mark.parametrize("listing", ["list", "list_prefixes"])
def test_listing_cut_every_time_is_backend_unavailable(
    listing: str,
    fault_proxy: FaultProxy,
    az_storage: AzureBlobStorage,
    cut_storage: AzureBlobStorage,
) -> None:
    # Before the fix: AttributeError 'NoneType' object has no attribute 'service_endpoint'.
    az_storage.put_if_absent("m/a/x.bin", b"x")
    fault_proxy.cut_headers("Content-Type", when="GET", times=100)
    with pytest.raises(BackendUnavailable) as info:
        list(getattr(cut_storage, listing)("m/"))
    _assert_unavailable(info.value, cut_storage)


def test_create_whose_answer_lost_its_etag_is_still_a_win(
    fault_proxy: FaultProxy, az_storage: AzureBlobStorage, cut_storage: AzureBlobStorage
) -> None:
    # The create landed; its answer lost the ETag. The retry meets our own blob and must count
    # it as a win with the real etag (never '"None"', never AlreadyExists).
    fault_proxy.cut_headers("ETag", when="PUT")
    etag = cut_storage.put_if_absent("v.json", b'{"mine": 1}')
    assert fault_proxy.injected["cut-headers"]
    stored = az_storage.read("v.json")
    assert (stored.data, stored.etag) == (b'{"mine": 1}', etag)


@pytest.mark.parametrize("header", ["Content-Length", "ETag", "Content-Type"])
def test_put_file_retries_an_answer_cut_once(
    header: str,
    fault_proxy: FaultProxy,
    az_storage: AzureBlobStorage,
    cut_storage: AzureBlobStorage,
    tmp_path: Path,
) -> None:
    data = os.urandom(4 * CHUNK + 5)  # parallel blocks, then the block list
    (tmp_path / "w.bin").write_bytes(data)
    fault_proxy.cut_headers(header, when="PUT")
    cut_storage.put_file("w.bin", tmp_path / "w.bin")
    assert az_storage.read("w.bin").data == data
