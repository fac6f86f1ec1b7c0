"""Fixtures: one fake-gcs-server per test session, a fresh bucket per test, and two tiny real
HTTP servers for failures the emulator cannot produce (lost answers, 401/403)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
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


# --- small real HTTP servers for failures the emulator cannot produce ---------------------------


class _Server:
    """A ThreadingHTTPServer on a free local port, serving ``handler`` in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LossyProxy:
    """Forwards every request to the emulator, but can *lose the answer* of chosen uploads.

    The upload reaches the emulator and takes effect; the client gets a 503 instead of the real
    answer, which is what a dropped connection or a gateway timeout looks like in production.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.lose_uploads = 0
        self.lost = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                finally:
                    conn.close()
                lose = False
                if self.command == "POST" and self.path.startswith("/upload/"):
                    with proxy.lock:
                        if proxy.lose_uploads > 0:
                            proxy.lose_uploads -= 1
                            proxy.lost += 1
                            lose = True
                if lose:
                    payload = b'{"error":{"code":503,"message":"answer lost by the test proxy"}}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                else:
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.server = _Server(Handler)
        self.url = self.server.url


@pytest.fixture
def lossy_proxy(gcs_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LossyProxy]:
    """A :class:`LossyProxy` in front of the emulator; STORAGE_EMULATOR_HOST points at it."""
    proxy = LossyProxy(gcs_env)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    try:
        yield proxy
    finally:
        proxy.server.close()


def _denying_handler(status: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _deny(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            payload = json.dumps(
                {"error": {"code": status, "message": "caller does not have permission"}}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _deny

    return Handler


@pytest.fixture(params=[401, 403])
def denying_host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server answering every request with 401 or 403, like GCS to unauthorised credentials."""
    server = _Server(_denying_handler(request.param))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    try:
        yield server.url
    finally:
        server.close()


# --- answers whose header block is cut short ----------------------------------------------------


class HeaderCutProxy:
    """A TCP proxy in front of the emulator that cuts answers just before one header line.

    The first ``times`` answers (after ``skip``) that carry header ``header`` are closed cleanly
    right before it: ``http.client`` takes the EOF at a line boundary for the end of the headers,
    so the SDK sees a plausible 200 without that header (and all later ones) and an empty body.
    """

    def __init__(self, upstream: str, header: str, *, times: int = 1, skip: int = 0) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))
        self.needle = b"\r\n" + header.lower().encode() + b":"
        self.times = times
        self.skip = skip
        self.cuts = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                at = data.lower().find(self.needle) if answers else -1
                if at != -1:
                    with self.lock:
                        cut = self.skip == 0 and self.cuts < self.times
                        self.skip = max(0, self.skip - 1)
                        self.cuts += cut
                    if cut:
                        sink.sendall(data[: at + 2])
                        break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.close()


@pytest.fixture
def header_cut(
    gcs_env: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HeaderCutProxy]]:
    """``header_cut(header, times=1, skip=0)``: a :class:`HeaderCutProxy` in front of the
    emulator; STORAGE_EMULATOR_HOST points at it from then on (open storages after calling it)."""
    proxies: list[HeaderCutProxy] = []

    def make(header: str, *, times: int = 1, skip: int = 0) -> HeaderCutProxy:
        proxy = HeaderCutProxy(gcs_env, header, times=times, skip=skip)
        proxies.append(proxy)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()
