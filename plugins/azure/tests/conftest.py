"""Fixtures for the Azure plugin tests: one Azurite server per session, a fresh container per test.

Every test talks HTTP to a real Azurite blob server (no SDK mocks). When Azurite cannot be found
(no ``npm install`` was run) the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from modelshelf_azure.testing import AzuriteNotFound, azurite, find_azurite


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """Connection string of a session-wide in-memory Azurite."""
    try:
        find_azurite()
    except AzuriteNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must install it: `npm install` at the repository root)")
        pytest.skip(str(exc))
    with azurite() as connection_string:
        yield connection_string


@pytest.fixture(scope="session")
def azurite_port(azurite_connection_string: str) -> int:
    """The port Azurite's blob service listens on (for a proxy in front of it)."""
    endpoint = next(p for p in azurite_connection_string.split(";") if p.startswith("BlobEndpoint="))
    return int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture(scope="session")
def blob_service(azurite_connection_string: str) -> Iterator[Any]:
    """An SDK client on the Azurite account, for arranging and checking state in tests."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    yield service
    service.close()


@pytest.fixture
def container(blob_service: Any) -> Iterator[str]:
    """A fresh, empty container; deleted after the test."""
    name = f"t{secrets.token_hex(8)}"
    blob_service.create_container(name)
    yield name
    blob_service.delete_container(name)


@pytest.fixture
def shelf_url(container: str) -> str:
    return f"az://{container}/shelves/test"


@pytest.fixture
def az_storage(shelf_url: str, azurite_connection_string: str) -> Iterator[Any]:
    """An :class:`AzureBlobStorage` on a fresh container, below a prefix."""
    from modelshelf_azure.storage import AzureBlobStorage

    storage = AzureBlobStorage(shelf_url, connection_string=azurite_connection_string)
    yield storage
    storage.close()


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, azurite_connection_string: str) -> str:
    """Point ``AZURE_STORAGE_CONNECTION_STRING`` at Azurite (and clear the other variables)."""
    for variable in (
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string)
    return azurite_connection_string


class FaultProxy:
    """An HTTP proxy in front of Azurite that can lose the response of chosen requests.

    The request still reaches Azurite and is applied; only its answer is dropped (the client's
    connection is closed), which is what a network failure after a write looks like to a client.
    ``drop(predicate)`` arms it: the next request for which ``predicate(method, headers)`` is true
    loses its response, once.

    ``cut(predicate, header, times)`` cuts the header block of the next ``times`` matching answers
    that carry ``header``: the status line and the headers before it are sent, then the connection
    closes. ``http.client`` takes that for a complete answer lacking those headers (and, with no
    Content-Length, an empty body), as when a network path closes a connection mid-answer.
    """

    def __init__(self, upstream_port: int) -> None:
        import http.client
        import http.server
        import threading

        proxy = self
        self.upstream_port = upstream_port
        self.dropped: list[str] = []
        self._predicate: Any = None
        #: "METHOD path" of every answer cut so far.
        self.cuts: list[str] = []
        self._cut: tuple[Any, str, int] | None = None
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()}
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                with proxy._lock:
                    predicate = proxy._predicate
                    drop = predicate is not None and predicate(self.command, self.headers)
                    if drop:
                        proxy._predicate = None
                        proxy.dropped.append(f"{self.command} {self.path.split('?')[0]}")
                    names = [name.lower() for name, _ in response.getheaders()]
                    cut = (
                        not drop
                        and proxy._cut is not None
                        and proxy._cut[1] in (*names, "content-length")
                        and proxy._cut[0](self.command, self.headers)
                    )
                    if cut:
                        assert proxy._cut is not None
                        predicate, header, left = proxy._cut
                        proxy._cut = (predicate, header, left - 1) if left > 1 else None
                        proxy.cuts.append(f"{self.command} {self.path.split('?')[0]}")
                        cut_at = header
                if drop:
                    self.close_connection = True  # applied upstream, answer lost
                    return
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if cut and name.lower() == cut_at:
                        break
                    # A HEAD answer's Content-Length is the blob's size: relay it as is.
                    dropped = ("transfer-encoding", "connection")
                    if self.command != "HEAD":
                        dropped += ("content-length",)
                    if name.lower() not in dropped:
                        self.send_header(name, value)
                else:
                    cut = cut and cut_at != "content-length"
                if cut:
                    # Headers up to the cut, no blank line, no body: then the connection closes.
                    self.flush_headers()
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def drop(self, predicate: Any) -> None:
        with self._lock:
            self._predicate = predicate

    def cut(self, predicate: Any, header: str, times: int = 1) -> None:
        with self._lock:
            self._cut = (predicate, header.lower(), times)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(azurite_connection_string: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of the session's Azurite."""
    endpoint = next(
        p for p in azurite_connection_string.split(";") if p.startswith("BlobEndpoint=")
    )
    port = int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = FaultProxy(port)
    yield proxy
    proxy.close()
