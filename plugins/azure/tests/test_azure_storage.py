"""The Azure backend's primitives and errors, over HTTP against a real Azurite server."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    BackendUnavailable,
    InvalidName,
    KeyNotFound,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from modelshelf_azure.storage import AzureBlobStorage
from modelshelf_azure.testing import DEV_ACCOUNT, DEV_KEY, connection_string, free_port


def _account_url(connection_string: str) -> str:
    return next(
        part.split("=", 1)[1]
        for part in connection_string.split(";")
        if part.startswith("BlobEndpoint=")
    )


def _read_only_sas(container: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        DEV_ACCOUNT,
        container,
        account_key=DEV_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),  # noqa: UP017 - 3.10
    )


def _assert_clean(message: str, *secrets: str) -> None:
    """One line, and none of the secrets (or their signature part) in it."""
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message
        if "sig=" in secret:
            signature = secret.split("sig=", 1)[1].split("&", 1)[0]
            assert signature not in message
    assert DEV_KEY not in message
    assert DEV_KEY[:20] not in message


# --- plugin surface ---------------------------------------------------------------------------


def test_import_does_not_load_the_sdk() -> None:
    code = (
        "import sys, modelshelf_azure\n"
        "loaded = [m for m in sys.modules if m == 'azure' or m.startswith('azure.')]\n"
        "assert not loaded, loaded\n"
        "assert 'requests' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_entry_point_registers_both_schemes() -> None:
    from modelshelf.plugins import PluginRegistry

    storages = PluginRegistry().storages()
    for scheme in ("az", "azure"):
        assert storages[scheme].distribution == "modelshelf-azure"


# --- primitives -------------------------------------------------------------------------------


def test_round_trip_below_the_prefix(
    az_storage: AzureBlobStorage, blob_service: Any, container: str
) -> None:
    etag = az_storage.put_if_absent("models/m/_versions/1.json", b'{"v": 1}')
    stored = az_storage.read("models/m/_versions/1.json")
    assert stored.data == b'{"v": 1}' and stored.etag == etag
    # The key lives below the shelf prefix in the container, nowhere else.
    names = [b.name for b in blob_service.get_container_client(container).list_blobs()]
    assert names == ["shelves/test/models/m/_versions/1.json"]
    info = az_storage.stat("models/m/_versions/1.json")
    assert info is not None and (info.size, info.etag) == (8, etag)
    az_storage.delete("models/m/_versions/1.json")
    assert az_storage.stat("models/m/_versions/1.json") is None
    az_storage.delete("models/m/_versions/1.json")  # deleting twice is fine


def test_keys_outside_the_prefix_are_invisible(
    az_storage: AzureBlobStorage, blob_service: Any, container: str
) -> None:
    client = blob_service.get_container_client(container)
    client.upload_blob("shelves/other/x.json", b"{}")
    client.upload_blob("shelves/test-sibling/y.json", b"{}")
    az_storage.put_if_absent("mine.json", b"{}")
    assert [i.key for i in az_storage.list("")] == ["mine.json"]
    assert list(az_storage.list_prefixes("")) == []


def test_listed_read_and_stat_etags_agree_and_drive_cas(az_storage: AzureBlobStorage) -> None:
    # Azure lists etags unquoted but returns them quoted on reads; the backend must not care.
    az_storage.put_if_absent("a.json", b"1")
    listed = next(iter(az_storage.list("a.json")))
    stat = az_storage.stat("a.json")
    assert stat is not None
    assert listed.etag == stat.etag == az_storage.read("a.json").etag
    new = az_storage.put_if_match("a.json", b"2", listed.etag)
    assert az_storage.read("a.json").etag == new


def test_create_only_race_has_exactly_one_winner(az_storage: AzureBlobStorage) -> None:
    contenders = 16
    barrier = threading.Barrier(contenders)
    outcomes: dict[int, str] = {}

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            az_storage.put_if_absent("race.json", f"writer {i}".encode())
            outcomes[i] = "won"
        except AlreadyExists:
            outcomes[i] = "lost"

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == contenders and len(winners) == 1
    assert az_storage.read("race.json").data == f"writer {winners[0]}".encode()


def test_cas_race_has_exactly_one_winner_per_etag(az_storage: AzureBlobStorage) -> None:
    etag = az_storage.put_if_absent("cas.json", b"start")
    contenders = 12
    barrier = threading.Barrier(contenders)
    won: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            az_storage.put_if_match("cas.json", f"{i}".encode(), etag)
            won.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert az_storage.read("cas.json").data == f"{won[0]}".encode()


def test_cas_on_a_missing_key_fails(az_storage: AzureBlobStorage) -> None:
    with pytest.raises(PreconditionFailed):
        az_storage.put_if_match("never.json", b"x", '"0x8DC0000000000"')
    assert az_storage.stat("never.json") is None


def test_listing_pages_through_every_key(shelf_url: str, azurite_connection_string: str) -> None:
    # A page size of 7 forces 18 List Blobs round trips with continuation markers.
    storage = AzureBlobStorage(
        shelf_url, connection_string=azurite_connection_string, results_per_page=7
    )
    try:
        keys = {f"models/m{i % 5}/_log/{i:04d}.json" for i in range(120)}
        for key in keys:
            storage.put_if_absent(key, b"{}")
        assert {i.key for i in storage.list("models/")} == keys
        assert {i.key for i in storage.list("models/m3/")} == {
            k for k in keys if k.startswith("models/m3/")
        }
        assert sorted(storage.list_prefixes("models/")) == [f"models/m{i}/" for i in range(5)]
    finally:
        storage.close()


@pytest.mark.slow
def test_listing_more_than_5000_blobs(
    az_storage: AzureBlobStorage, blob_service: Any, container: str
) -> None:
    # 5,001 names: more than the service's largest page, so the listing must follow a marker.
    from concurrent.futures import ThreadPoolExecutor

    client = blob_service.get_container_client(container)
    names = [f"blobs/sha256/{i % 256:02x}/{i:064x}" for i in range(5001)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: client.upload_blob(f"shelves/test/{n}", b"x"), names))
    assert sorted(i.key for i in az_storage.list("blobs/")) == sorted(names)


def test_list_prefixes_yields_only_folders(az_storage: AzureBlobStorage) -> None:
    for key in ["models/a/_versions/1.json", "models/b/c/_versions/1.json", "models/top.json"]:
        az_storage.put_if_absent(key, b"{}")
    assert sorted(az_storage.list_prefixes("models/")) == ["models/a/", "models/b/"]
    assert list(az_storage.list_prefixes("models/b/")) == ["models/b/c/"]
    assert list(az_storage.list_prefixes("missing/")) == []


def test_stream_a_20mb_blob_in_small_chunks(az_storage: AzureBlobStorage, tmp_path: Path) -> None:
    payload = os.urandom(20 * 1024 * 1024 + 3)
    source = tmp_path / "weights.bin"
    source.write_bytes(payload)
    az_storage.put_file("blobs/w", source)
    digest = hashlib.sha256()
    sizes = []
    for chunk in az_storage.read_stream("blobs/w", chunk_size=64 * 1024):
        digest.update(chunk)
        sizes.append(len(chunk))
    assert sum(sizes) == len(payload)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert max(sizes) == 64 * 1024 and len(sizes) == -(-len(payload) // (64 * 1024))


def test_read_stream_of_a_missing_key_raises_at_once(az_storage: AzureBlobStorage) -> None:
    with pytest.raises(KeyNotFound, match=r"nothing\.bin not found in shelf az://"):
        az_storage.read_stream("nothing.bin")


def test_put_file_uploads_parallel_blocks_and_replaces(
    az_storage: AzureBlobStorage,
    blob_service: Any,
    container: str,
    tmp_path: Path,
    azurite_connection_string: str,
) -> None:
    storage = AzureBlobStorage(
        az_storage.url,
        connection_string=azurite_connection_string,
        max_block_size=1024 * 1024,
        max_single_put_size=1024 * 1024,
    )
    try:
        payload = os.urandom(5 * 1024 * 1024 + 1)
        source = tmp_path / "model.bin"
        source.write_bytes(payload)
        storage.put_file("blobs/model", source)
        blob = blob_service.get_blob_client(container, "shelves/test/blobs/model")
        committed, uncommitted = blob.get_block_list("all")
        assert len(committed) == 6 and not uncommitted  # six 1 MiB blocks, one block list
        assert blob.download_blob().readall() == payload
        source.write_bytes(b"replacement")
        storage.put_file("blobs/model", source)
        assert storage.read("blobs/model").data == b"replacement"
    finally:
        storage.close()


def test_touch_moves_last_modified(az_storage: AzureBlobStorage) -> None:
    az_storage.put_if_absent("blobs/t", b"content")
    before = az_storage.stat("blobs/t")
    time.sleep(1.1)  # Last-Modified has one-second resolution
    az_storage.touch("blobs/t")
    after = az_storage.stat("blobs/t")
    assert before is not None and after is not None
    assert after.modified is not None and before.modified is not None
    assert after.modified > before.modified
    assert az_storage.read("blobs/t").data == b"content"
    az_storage.touch("blobs/missing")  # vanished meanwhile: not an error


def test_unsafe_keys_are_refused_before_any_request(az_storage: AzureBlobStorage) -> None:
    for key in ["../x", "/abs", "a//b", "a/../b", ""]:
        with pytest.raises(InvalidName):
            az_storage.read(key)
        with pytest.raises(InvalidName):
            az_storage.put_if_absent(key, b"x")


# --- errors -----------------------------------------------------------------------------------


def test_missing_container_is_one_clear_line(azurite_connection_string: str) -> None:
    storage = AzureBlobStorage(
        "az://no-such-container/p", connection_string=azurite_connection_string
    )
    try:
        calls = [
            lambda: storage.stat("x"),
            lambda: storage.read("x"),
            lambda: storage.read_stream("x"),
            lambda: list(storage.list("")),
            lambda: storage.put_if_absent("x", b"1"),
            lambda: storage.delete("x"),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                call()
            assert time.monotonic() - started < 5
            assert not isinstance(info.value, KeyNotFound)
            message = str(info.value)
            assert "az://no-such-container/p" in message
            assert "create the container or check its name" in message
            _assert_clean(message, azurite_connection_string)
    finally:
        storage.close()


def test_nothing_listening_is_backend_unavailable_quickly() -> None:
    port = free_port()  # nothing listens there
    storage = AzureBlobStorage("az://models/p", connection_string=connection_string(port))
    try:
        for call in (lambda: storage.read("x"), lambda: storage.put_if_absent("x", b"1")):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                call()
            elapsed = time.monotonic() - started
            assert elapsed < 12, f"took {elapsed:.1f} s"
            message = str(info.value)
            assert f"http://127.0.0.1:{port}/{DEV_ACCOUNT}" in message
            assert "connection refused" in message
            _assert_clean(message)
    finally:
        storage.close()


def test_read_only_sas_reads_but_refuses_writes(
    az_storage: AzureBlobStorage, container: str, azurite_connection_string: str, tmp_path: Path
) -> None:
    etag = az_storage.put_if_absent("k.json", b"v")
    sas = _read_only_sas(container)
    read_only = AzureBlobStorage(
        az_storage.url, account_url=_account_url(azurite_connection_string), sas_token=sas
    )
    try:
        assert read_only.read("k.json").data == b"v"
        assert [i.key for i in read_only.list("")] == ["k.json"]
        assert b"".join(read_only.read_stream("k.json")) == b"v"
        source = tmp_path / "f"
        source.write_bytes(b"data")
        writes = [
            lambda: read_only.put_if_absent("new.json", b"x"),
            lambda: read_only.put_if_match("k.json", b"x", etag),
            lambda: read_only.put_file("blobs/f", source),
            lambda: read_only.delete("k.json"),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyShelf) as info:
                write()
            message = str(info.value)
            assert f"shelf {az_storage.url} is read-only for these credentials" in message
            _assert_clean(message, sas)
        assert az_storage.read("k.json").data == b"v"
    finally:
        read_only.close()


def test_wrong_key_is_access_denied_without_the_key(
    shelf_url: str, azurite_connection_string: str
) -> None:
    wrong_key = "A" * 86 + "=="
    storage = AzureBlobStorage(
        shelf_url, connection_string=azurite_connection_string.replace(DEV_KEY, wrong_key)
    )
    try:
        with pytest.raises(AccessDenied) as info:
            storage.read("x.json")
        assert not isinstance(info.value, ReadOnlyShelf)
        _assert_clean(str(info.value), wrong_key)
        assert "check the account key" in str(info.value)
    finally:
        storage.close()


def test_unknown_option_is_refused() -> None:
    with pytest.raises(StorageError, match=r"unknown option.*max_concurency"):
        AzureBlobStorage("az://models/p", connection_string="x", max_concurency=3)


def test_malformed_connection_string_is_not_echoed() -> None:
    secret = "AccountKeyIsSecretButMalformed"
    with pytest.raises(StorageError, match=r"connection string .* is malformed") as info:
        AzureBlobStorage("az://models/p", connection_string=secret)
    assert secret not in str(info.value)


# --- lost responses ---------------------------------------------------------------------------
