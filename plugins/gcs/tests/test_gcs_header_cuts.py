"""Answers cut inside their header block: retried, then a one-line BackendUnavailable.

A connection closed just before ``Content-Type`` or ``Content-Length`` reaches the SDK as a 200
with an empty body that it takes for a success, then trips over (``'bytes' object has no
attribute 'get'``, JSON decoding errors). ``GCSStorage`` must ask again, and when the endpoint
keeps answering like that, say so in one line naming it. Real emulator behind a real TCP proxy.
That one cut answer is asked again is the fault contract's promise (``test_gcs_fault_contract.py``);
these are the GCS specifics: the message, and which errors count as malformed answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from modelshelf.errors import BackendUnavailable, StorageError

if TYPE_CHECKING:
    from modelshelf.testing.faultproxy import FaultProxy
    from modelshelf_gcs.storage import GCSStorage

HEADERS = ["Content-Type", "Content-Length"]
RECORD = b'{"a": 1}'


def _open(url: str, **options: Any) -> GCSStorage:
    from modelshelf_gcs import open_storage

    return open_storage(url, **options)


@pytest.fixture
def seeded(gcs_storage: GCSStorage, tmp_path: Path) -> GCSStorage:
    """The clean storage, holding a record and two blobs under ``models/``."""
    gcs_storage.put_if_absent("a.json", RECORD)
    gcs_storage.put_if_absent("models/x/1.json", b"{}")
    gcs_storage.put_if_absent("models/y/1.json", b"{}")
    return gcs_storage


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("op", ["stat", "read", "list", "put_if_absent"])
def test_endpoint_that_keeps_cutting_answers_is_unavailable(
    op: str,
    header: str,
    seeded: GCSStorage,
    storage_url: str,
    header_cut: Callable[..., FaultProxy],
    tmp_path: Path,
) -> None:
    from modelshelf_gcs.storage import GCSStorage

    MALFORMED_ATTEMPTS = GCSStorage.answer_retry.attempts

    proxy = header_cut(header, times=1000)
    # Some cut answers look like dropped connections to the SDK, which retries those itself
    # until retry_deadline: keep it short.
    faulty = _open(storage_url, retry_deadline=1)
    calls: dict[str, Callable[[], Any]] = {
        "stat": lambda: faulty.stat("a.json"),
        "read": lambda: faulty.read("a.json"),
        "list": lambda: list(faulty.list("models/")),
        "put_if_absent": lambda: faulty.put_if_absent("other.json", b"{}"),
    }
    try:
        with pytest.raises(BackendUnavailable) as caught:
            calls[op]()
    finally:
        faulty.close()
    text = str(caught.value)
    assert "\n" not in text
    assert proxy.endpoint in text and storage_url in text
    assert "malformed answer" in text or "kept failing" in text
    assert proxy.injected["cut-headers"] >= MALFORMED_ATTEMPTS  # asked again before giving up


def test_only_malformed_answers_are_retried() -> None:
    """Credential and request-building errors share ValueError's family but are not transient."""
    import requests
    from google.auth import exceptions as auth_exc
    from modelshelf_gcs._errors import is_malformed as _malformed

    assert _malformed(AttributeError("'bytes' object has no attribute 'get'"))
    assert _malformed(ValueError("Expecting value: line 1 column 1 (char 0)"))
    assert _malformed(requests.JSONDecodeError("Expecting value", "", 0))
    assert not _malformed(auth_exc.InvalidValue("bad key"))  # a ValueError too
    assert not _malformed(auth_exc.DefaultCredentialsError("no credentials"))
    assert not _malformed(requests.exceptions.InvalidURL("bad url"))  # a ValueError too
    assert not _malformed(KeyError("x"))


def test_errors_that_are_not_malformed_answers_are_not_retried(gcs_storage: GCSStorage) -> None:
    from google.auth import exceptions as auth_exc

    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise auth_exc.InvalidValue("bad key")

    with pytest.raises(StorageError):  # mapped at once, not retried
        gcs_storage._call(call, "read", "a.json")
    assert calls == 1
