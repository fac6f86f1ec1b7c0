"""Fixtures: one fake-gcs-server per test session, a fresh bucket per test, and core's fault proxy
in front of it for what the emulator cannot do (lost answers, cut headers, 401/403 answers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from modelshelf.testing.faultproxy import Fault, FaultProxy, Request
from modelshelf_gcs.testing import create_bucket, fake_gcs_server

if TYPE_CHECKING:
    from modelshelf_gcs.storage import GCSStorage

# The Google SDK is imported inside fixtures only: the whole repository's tests run in one pytest
# process, and some of them check that plain modelshelf never imports a cloud SDK.

PROJECT = "modelshelf-test"


@pytest.fixture(scope="session")
def gcs_host() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a fake-gcs-server running for the whole session."""
    with fake_gcs_server() as host:
        yield host


@pytest.fixture
def gcs_env(gcs_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point google-cloud-storage (here and in child processes) at the emulator for one test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return gcs_host


@pytest.fixture
def bucket(gcs_env: str) -> str:
    """Name of a new, empty bucket on the emulator."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    create_bucket(gcs_env, name, project=PROJECT)
    return name


@pytest.fixture
def storage_url(bucket: str) -> str:
    return f"gs://{bucket}/shelf"


@pytest.fixture
def gcs_storage(storage_url: str) -> Iterator[GCSStorage]:
    from modelshelf_gcs import open_storage

    storage = open_storage(storage_url)
    try:
        yield storage
    finally:
        storage.close()


@pytest.fixture
def lossy_proxy(gcs_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of the emulator; STORAGE_EMULATOR_HOST points at it."""
    with FaultProxy(gcs_env) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        yield proxy


@pytest.fixture
def lose_uploads(lossy_proxy: FaultProxy) -> Callable[[int], Fault]:
    """``lose_uploads(n)``: the next ``n`` uploads land, their answers are replaced by a 503
    (what a dropped connection or a gateway timeout looks like in production)."""

    def uploads(request: Request) -> bool:
        return request.method == "POST" and request.path.startswith("/upload/")

    return lambda times: lossy_proxy.lose_answers(when=uploads, times=times, status=503)


@pytest.fixture(params=[401, 403])
def denying_host(
    request: pytest.FixtureRequest, gcs_host: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An endpoint answering every request with 401 or 403, like GCS to unauthorised callers."""
    with FaultProxy(gcs_host) as proxy:
        proxy.deny_requests(status=request.param, message="caller does not have permission")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        yield proxy.endpoint


# --- answers whose header block is cut short ----------------------------------------------------


@pytest.fixture
def header_cut(
    gcs_env: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., FaultProxy]]:
    """``header_cut(header, times=1, skip=0)``: a :class:`FaultProxy` in front of the emulator
    that cuts answers before ``header``; STORAGE_EMULATOR_HOST points at it from then on (open
    storages after calling it)."""
    proxies: list[FaultProxy] = []

    def make(header: str, *, times: int = 1, skip: int = 0) -> FaultProxy:
        proxy = FaultProxy(gcs_env)
        proxy.cut_headers(header, times=times, skip=skip)
        proxies.append(proxy)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()
