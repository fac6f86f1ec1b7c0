"""An HTTP proxy that drops chosen request headers: a storage server that ignores conditions.

Some S3-compatible servers and gateways accept ``If-None-Match`` / ``If-Match`` and then ignore
them. Put :class:`HeaderStrippingProxy` between a storage client and a real local server (moto,
Azurite, ...) and the client talks to exactly such a server: every conditional write succeeds.

>>> with HeaderStrippingProxy(target_port=moto_port) as proxy:
...     storage = open_storage(f"s3://bucket/shelf?endpoint_url={proxy.endpoint}")

It listens on 127.0.0.1 only, one thread per client connection, HTTP/1.1 with keep-alive. Request
bodies framed by ``Content-Length`` or ``Transfer-Encoding: chunked`` are read whole (the proxy is
for small test objects), ``Expect: 100-continue`` is answered by the proxy itself, and every
request goes upstream on a fresh connection with a ``Content-Length``. Answers are read whole and
relayed with a ``Content-Length``. No pytest, no SDK import: suites of any plugin can use it.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

__all__ = ["CONDITIONAL_HEADERS", "HeaderStrippingProxy"]

#: The request headers that make a write conditional on S3 and Azure Blob Storage.
CONDITIONAL_HEADERS = ("If-None-Match", "If-Match")
#: Headers that describe one hop's connection or framing, never forwarded as they are.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


class HeaderStrippingProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``, minus the ``strip`` headers.

    ``stripped`` counts the headers removed, by name as the client spelt it, so a test can prove
    the proxy did something; ``seen`` lists ``(method, path)`` of every request forwarded. Set
    ``enabled = False`` to forward everything unchanged (a request-counting pass-through).
    """

    def __init__(
        self,
        target_port: int,
        *,
        strip: Iterable[str] = CONDITIONAL_HEADERS,
        target_host: str = "127.0.0.1",
        timeout: float = 60.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.strip = frozenset(name.lower() for name in strip)
        self.timeout = timeout
        self.enabled = True
        self.stripped: Counter[str] = Counter()
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="header-stripping-proxy"
        )
        self._thread.start()

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send one request upstream (the chosen headers removed); return the whole answer."""
        kept: list[tuple[str, str]] = []
        with self._lock:
            self.seen.append((method, path))
            for name, value in headers:
                lowered = name.lower()
                if lowered in _HOP_BY_HOP or lowered == "content-length":
                    continue
                if self.enabled and lowered in self.strip:
                    self.stripped[name] += 1
                    continue
                kept.append((name, value))
        if body is not None:
            kept.append(("Content-Length", str(len(body))))
        upstream = http.client.HTTPConnection(*self.target, timeout=self.timeout)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in kept:
                upstream.putheader(name, value)
            upstream.endheaders(body)
            response = upstream.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            upstream.close()

    @property
    def requests(self) -> int:
        """How many requests were forwarded."""
        with self._lock:
            return len(self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> HeaderStrippingProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _handler(proxy: HeaderStrippingProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1: keep-alive, and BaseHTTPRequestHandler answers "Expect: 100-continue" itself.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

        def _body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers: nothing a test server needs
                return b"".join(parts)
            length = self.headers.get("Content-Length")
            return self.rfile.read(int(length)) if length is not None else None

        def _relay(self) -> None:
            body = self._body()
            try:
                status, reason, headers, data = proxy.forward(
                    self.command, self.path, list(self.headers.items()), body
                )
            except OSError as exc:
                self.send_error(502, f"upstream failed: {type(exc).__name__}")
                return
            self.send_response_only(status, reason)
            no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
            for name, value in headers:
                lowered = name.lower()
                if lowered in _HOP_BY_HOP:
                    continue
                # A HEAD answer's Content-Length is the object's size: relay it as it is.
                if lowered == "content-length" and self.command != "HEAD":
                    continue
                self.send_header(name, value)
            if not no_body:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not no_body:
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _relay

    return Handler
