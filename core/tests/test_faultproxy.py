"""modelshelf.testing.faultproxy and .servers against a small local HTTP server (no cloud SDK).

The proxy's use against moto, Azurite and fake-gcs-server is the fault contract, run by each
storage plugin; these pin its behaviour on plain HTTP: what each fault does to one exchange.
"""

from __future__ import annotations

import http.client
import http.server
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from modelshelf.testing.faultproxy import CONDITIONAL_HEADERS, FaultProxy
from modelshelf.testing.servers import ServerNotStarted, answers_http, free_port, local_server

BODY = bytes(range(256)) * 400  # 100 KiB


class _Store(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    objects: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, data: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"ETag": '"e"', **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, self.objects.get(self.path, BODY))

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        self.objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(201, b"", **{"X-Saw-If-None-Match": self.headers.get("If-None-Match", "-")})


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(server_port: int) -> Iterator[FaultProxy]:
    with FaultProxy(server_port) as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)


def test_forwards_bodies_both_ways_on_one_connection(proxy: FaultProxy) -> None:
    connection = connect(proxy)
    connection.request("PUT", "/a", body=BODY)
    assert connection.getresponse().read() == b""
    connection.request("GET", "/a")
    assert connection.getresponse().read() == BODY
    connection.request("HEAD", "/a")
    answer = connection.getresponse()
    assert answer.getheader("Content-Length") == str(len(BODY)) and answer.read() == b""
    assert proxy.requests == 3 and proxy.connections == 1 and not proxy.injected


def test_cut_headers_ends_the_answer_before_that_header(proxy: FaultProxy) -> None:
    fault = proxy.cut_headers("ETag", when="GET", skip=1)
    connection = connect(proxy)
    connection.request("GET", "/x")
    assert connection.getresponse().read() == BODY  # let through: skip=1
    connection.request("GET", "/x")
    answer = connection.getresponse()
    # A complete-looking answer without the header, nor the body its Content-Length would frame.
    assert answer.status == 200 and answer.getheader("ETag") is None and answer.read() == b""
    assert fault.hits == 1 and fault.struck == ["GET /x"]


def test_cut_body_closes_after_that_many_body_bytes(proxy: FaultProxy) -> None:
    fault = proxy.cut_body(1000)
    connection = connect(proxy)
    connection.request("GET", "/x")
    answer = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead) as caught:
        answer.read()
    assert len(caught.value.partial) == 1000 and fault.hits == 1


def test_a_lost_answer_was_applied(proxy: FaultProxy) -> None:
    fault = proxy.lose_answers(when="PUT")
    connection = connect(proxy)
    with pytest.raises(http.client.RemoteDisconnected):
        connection.request("PUT", "/lost", body=b"landed")
        connection.getresponse()
    assert _Store.objects["/lost"] == b"landed" and fault.hits == 1
    proxy.lose_answers(when="PUT", status=503)
    connection = connect(proxy)
    connection.request("PUT", "/lost-503", body=b"landed too")
    answer = connection.getresponse()
    assert answer.status == 503 and b'"code": 503' in answer.read()
    assert _Store.objects["/lost-503"] == b"landed too"


def test_denied_requests_never_reach_the_server(proxy: FaultProxy) -> None:
    fault = proxy.deny_requests(when="PUT", status=403, message="reader may not write")
    connection = connect(proxy)
    connection.request("PUT", "/denied", body=b"x")
    answer = connection.getresponse()
    assert answer.status == 403 and b"reader may not write" in answer.read()
    assert "/denied" not in _Store.objects and fault.hits == 1
    with urllib.request.urlopen(f"{proxy.endpoint}/denied", timeout=10) as reply:
        assert reply.status == 200  # reads go through


def test_stripped_headers_are_counted_and_enabled_false_forwards_everything(
    server_port: int,
) -> None:
    with FaultProxy(server_port, strip=CONDITIONAL_HEADERS) as proxy:
        connection = connect(proxy)
        connection.request("PUT", "/c", body=b"1", headers={"If-None-Match": "*"})
        answer = connection.getresponse()
        assert answer.getheader("X-Saw-If-None-Match") == "-" and answer.read() == b""
        proxy.enabled = False
        connection.request("PUT", "/c", body=b"2", headers={"If-None-Match": "*"})
        answer = connection.getresponse()
        assert answer.getheader("X-Saw-If-None-Match") == "*" and answer.read() == b""
        assert proxy.stripped == {"If-None-Match": 1}
        assert proxy.seen == [("PUT", "/c"), ("PUT", "/c")]


def test_seeded_random_faults_are_injected_and_counted(server_port: int) -> None:
    with FaultProxy(server_port, seed=7, rate=0.5, stall_seconds=0.2) as proxy:
        failures = 0
        for _ in range(30):
            try:
                with urllib.request.urlopen(f"{proxy.endpoint}/r", timeout=5) as reply:
                    assert reply.read() == BODY
            except (OSError, http.client.HTTPException):
                failures += 1
        assert failures > 0 and sum(proxy.injected.values()) == failures
        assert set(proxy.injected) <= {"refuse", "reset", "cut", "stall"}
    with pytest.raises(ValueError, match="bad fault plan"):
        FaultProxy(server_port, rate=0.5)  # a random plan needs a seed


def test_local_server_starts_probes_and_stops() -> None:
    command = lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]  # noqa: E731
    with (
        local_server(command, probe=answers_http("/"), name="http.server") as url,
        urllib.request.urlopen(url, timeout=5) as reply,
    ):
        assert reply.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_a_server_that_never_answers_is_one_clear_error() -> None:
    never = lambda port: [sys.executable, "-c", f"print('not listening on', {port})"]  # noqa: E731
    starting = local_server(
        never, probe=answers_http("/"), name="never-server", start_timeout=2, attempts=2
    )
    with (
        pytest.raises(ServerNotStarted, match="never-server did not start .*not listening on"),
        starting,
    ):
        pass
    assert 1024 <= free_port() <= 65535
