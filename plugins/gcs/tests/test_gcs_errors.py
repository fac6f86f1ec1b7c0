"""What a user sees when something is wrong: one line, the right exception, no credential, fast."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    BackendUnavailable,
    KeyNotFound,
    ReadOnlyShelf,
    StorageError,
)

if TYPE_CHECKING:
    from modelshelf.testing.faultproxy import Fault
    from modelshelf_gcs.storage import GCSStorage


def _open(url: str, **options: Any) -> GCSStorage:
    from modelshelf_gcs import open_storage

    return open_storage(url, **options)


def _operations(tmp_path: Path) -> dict[str, Callable[[GCSStorage], object]]:
    local = tmp_path / "local.bin"
    local.write_bytes(b"abc")
    return {
        "read": lambda s: s.read("a.json"),
        "read_stream": lambda s: list(s.read_stream("a.json")),
        "stat": lambda s: s.stat("a.json"),
        "list": lambda s: list(s.list("models/")),
        "list_prefixes": lambda s: list(s.list_prefixes("models/")),
        "put_file": lambda s: s.put_file("blobs/x", local),
        "put_if_absent": lambda s: s.put_if_absent("a.json", b"{}"),
        "put_if_match": lambda s: s.put_if_match("a.json", b"{}", "123"),
        "delete": lambda s: s.delete("a.json"),
        "touch": lambda s: s.touch("blobs/x"),
    }


WRITES = {"put_file", "put_if_absent", "put_if_match", "delete", "touch"}


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


# --- missing bucket, dead endpoint, denied access ----------------------------------------------


def test_missing_bucket_is_named_with_what_to_do(gcs_env: str, tmp_path: Path) -> None:
    storage = _open("gs://no-such-bucket-here/shelf")
    for name, operation in _operations(tmp_path).items():
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            operation(storage)
        assert time.monotonic() - started < 3, name  # a 404 is not retried
        assert type(info.value) is StorageError, (name, info.value)  # not KeyNotFound & co.
        message = _one_line(info.value)
        assert "'no-such-bucket-here'" in message and "gs://no-such-bucket-here/shelf" in message
        assert "create the bucket or check its name" in message, (name, message)


def test_nothing_listening_fails_fast_naming_the_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        storage = _open("gs://bucket/shelf")
        for name, operation in _operations(tmp_path).items():
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                operation(storage)
            elapsed = time.monotonic() - started
            message = _one_line(info.value)
            assert f"cannot reach http://127.0.0.1:{port}" in message, (name, message)
            assert "gs://bucket/shelf" in message
            assert elapsed < 3, (name, elapsed)  # refused connections are not retried for minutes


def test_denied_reads_and_writes(denying_host: str, tmp_path: Path) -> None:
    storage = _open("gs://private-bucket/shelf")
    for name, operation in _operations(tmp_path).items():
        with pytest.raises(AccessDenied) as info:
            operation(storage)
        message = _one_line(info.value)
        assert "gs://private-bucket/shelf" in message
        if name in WRITES:
            assert isinstance(info.value, ReadOnlyShelf), (name, message)
            assert "read-only for these credentials" in message
        else:
            assert not isinstance(info.value, ReadOnlyShelf), (name, message)
            assert "denied" in message and "'private-bucket'" in message


def test_server_errors_are_retried_then_reported(
    lose_uploads: Callable[[int], Fault], bucket: str
) -> None:
    """Every answer lost (503) until the retry deadline: BackendUnavailable, quickly with a
    short deadline, saying how long it tried."""
    storage = _open(f"gs://{bucket}/shelf", retry_deadline=1.5)
    lost = lose_uploads(1000)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"kept failing for 1\.5s .*HTTP 503") as info:
        storage.put_if_absent("a.json", b"{}")
    assert time.monotonic() - started < 6
    assert lost.hits >= 2  # it did retry
    _one_line(info.value)


# --- a lost answer to a conditional write --------------------------------------------------------


def test_lost_answer_to_create_only_write_is_still_our_win(
    lose_uploads: Callable[[int], Fault], bucket: str
) -> None:
    storage = _open(f"gs://{bucket}/shelf")
    lost = lose_uploads(1)  # the write lands, its answer is replaced by a 503
    etag = storage.put_if_absent("models/m/_versions/0000000001.json", b'{"mine": true}')
    assert lost.hits == 1
    stored = storage.read("models/m/_versions/0000000001.json")
    assert (stored.data, stored.etag) == (b'{"mine": true}', etag)
    # ...while a genuine conflict after a lost answer is still a conflict.
    lost = lose_uploads(1)
    with pytest.raises(AlreadyExists):
        storage.put_if_absent("models/m/_versions/0000000001.json", b'{"theirs": true}')


def test_lost_answer_to_compare_and_swap_is_still_our_win(
    lose_uploads: Callable[[int], Fault], bucket: str
) -> None:
    storage = _open(f"gs://{bucket}/shelf")
    first = storage.put_if_absent("alias.json", b"v1")
    lost = lose_uploads(1)
    second = storage.put_if_match("alias.json", b"v2", first)
    assert lost.hits == 1
    assert storage.read("alias.json").etag == second != first


def test_lost_answer_to_blob_upload_is_retried(
    lose_uploads: Callable[[int], Fault], bucket: str, tmp_path: Path
) -> None:
    storage = _open(f"gs://{bucket}/shelf")
    local = tmp_path / "w.bin"
    local.write_bytes(b"weights")
    lost = lose_uploads(1)
    storage.put_file("blobs/w", local)  # the SDK would not retry an unconditional upload itself
    assert lost.hits == 1
    assert storage.read("blobs/w").data == b"weights"


# --- anonymous access ----------------------------------------------------------------------------


def test_anonymous_reads_work_and_writes_are_refused(
    gcs_storage: GCSStorage, storage_url: str, tmp_path: Path
) -> None:
    gcs_storage.put_if_absent("models/m/_versions/0000000001.json", b"{}")
    anonymous = _open(storage_url, anonymous=True)
    assert anonymous.read("models/m/_versions/0000000001.json").data == b"{}"
    assert [i.key for i in anonymous.list("models/")] == ["models/m/_versions/0000000001.json"]
    assert list(anonymous.list_prefixes("models/")) == ["models/m/"]
    for name, operation in _operations(tmp_path).items():
        if name not in WRITES:
            continue
        with pytest.raises(ReadOnlyShelf, match="opened anonymously, which is read-only") as info:
            operation(anonymous)
        _one_line(info.value)
    assert gcs_storage.stat("a.json") is None and gcs_storage.stat("blobs/x") is None


def test_anonymous_from_the_environment(
    gcs_storage: GCSStorage, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcs_storage.put_if_absent("a.json", b"{}")
    monkeypatch.setenv("MODELSHELF_GCS_ANONYMOUS", "1")
    reader = _open(storage_url)
    assert reader.read("a.json").data == b"{}"
    with pytest.raises(ReadOnlyShelf):
        reader.put_if_absent("b.json", b"{}")
    assert not _open(storage_url, anonymous=False).read_only  # an explicit option wins


def test_anonymous_shelf_through_modelshelf_open(
    gcs_storage: GCSStorage, storage_url: str, tmp_path: Path
) -> None:
    import modelshelf

    source = tmp_path / "model.txt"
    source.write_text("weights")
    with_credentials = modelshelf.open(storage_url, cache=tmp_path / "cache")
    with_credentials.upload("public-model", source)
    reader = modelshelf.open(storage_url, cache=tmp_path / "cache2", anonymous=True)
    loaded = reader.load("public-model")
    assert Path(loaded).read_text() == "weights"
    with pytest.raises(ReadOnlyShelf):
        reader.upload("public-model", source)
    assert [v.version for v in with_credentials.versions("public-model")] == [1]


# --- URLs and options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/x", "not a Google Cloud Storage URL"),
        ("gs:///prefix", "no bucket"),
        ("gs://My_Bucket/x", "invalid bucket name 'My_Bucket'"),
        ("gs://ab/x", "invalid bucket name"),
        ("gs://bucket/a//b", "invalid prefix"),
        ("gs://bucket/a/../b", "invalid prefix"),
        ("gs://bucket/x?project=p", "not URL parameters"),
    ],
)
def test_bad_urls(url: str, expected: str) -> None:
    with pytest.raises(StorageError, match=expected) as info:
        _open(url)
    _one_line(info.value)


def test_credentials_in_url_are_never_echoed() -> None:
    with pytest.raises(StorageError) as info:
        _open("gs://user:s3cr3t-t0ken@bucket/prefix")
    assert "s3cr3t" not in str(info.value)
    assert "credentials_file" in str(info.value)


def test_url_forms(gcs_env: str) -> None:
    storage = _open("gcs://bucket/a/b/")
    assert (storage.location.bucket, storage.location.prefix) == ("bucket", "a/b/")
    assert storage.url == "gcs://bucket/a/b"
    root = _open("gs://bucket")
    assert (root.location.prefix, root.describe()) == ("", "gs://bucket")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"region": "eu"}, "unknown option.*region.*known options"),
        ({"chunk_size": 1000}, "multiple of 256 KiB"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"anonymous": "no"}, "anonymous must be True or False"),
        ({"anonymous": True, "credentials_file": "/x.json"}, "cannot be combined"),
        ({"credentials_file": "/nonexistent/key.json"}, "'/nonexistent/key.json' does not exist"),
    ],
)
def test_bad_options(gcs_env: str, options: dict[str, Any], expected: str) -> None:
    with pytest.raises(StorageError, match=expected) as info:
        _open("gs://bucket/x", **options)
    _one_line(info.value)


def test_invalid_key_file_is_refused_without_quoting_it(gcs_env: str, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SUPERSECRET",'
        ' "client_email": "x@y.iam.gserviceaccount.com"}'
    )
    with pytest.raises(AccessDenied, match="not a valid service account JSON key") as info:
        _open("gs://bucket/x", credentials_file=key)
    assert "SUPERSECRET" not in str(info.value)
    _one_line(info.value)


def test_no_credentials_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    with pytest.raises(AccessDenied, match="no Google credentials found") as info:
        _open("gs://bucket/x")
    _one_line(info.value)


# --- plugin wiring -------------------------------------------------------------------------------


def test_import_and_discovery_do_not_import_the_sdk() -> None:
    code = (
        "import sys, modelshelf_gcs\n"
        "assert not [m for m in sys.modules if m.startswith('google')], 'import'\n"
        "from modelshelf.plugins import get_registry\n"
        "storages = get_registry().storages()\n"
        "assert storages['gs'].distribution == 'modelshelf-gcs', storages['gs']\n"
        "assert storages['gcs'].factory is storages['gs'].factory\n"
        "assert not [m for m in sys.modules if m.startswith('google')], 'discovery'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_modelshelf_open_returns_a_gcs_storage(bucket: str, tmp_path: Path) -> None:
    import modelshelf
    from modelshelf_gcs.storage import GCSStorage

    shelf = modelshelf.open(f"gs://{bucket}/p", cache=tmp_path / "cache")
    assert isinstance(shelf.storage, GCSStorage)
    assert shelf.url == f"gs://{bucket}/p"
    shelf.close()


def test_missing_key_after_bucket_check_is_key_not_found(gcs_storage: GCSStorage) -> None:
    # The first 404 costs one bucket check; later ones are plain KeyNotFound.
    for _ in range(2):
        with pytest.raises(KeyNotFound):
            gcs_storage.read("absent.json")
    assert gcs_storage._bucket_known
