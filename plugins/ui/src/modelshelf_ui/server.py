"""The local read-only server: the page's own assets and the JSON documents, nothing else.

No request path reaches a file system or a shelf key: a path is either one of the fixed
:data:`~modelshelf_ui.pages.ASSETS` or a data path that :func:`~modelshelf_ui.pages.parse_data_path`
accepts (a valid model name, a version number), answered from a :class:`ShelfView`. A request
whose ``Host`` header is not the address served is refused, so a web page elsewhere cannot read
the shelf through DNS rebinding.
"""

from __future__ import annotations

import http.server
import sys
import traceback
from typing import Any
from urllib.parse import urlsplit

from modelshelf import ModelshelfError
from modelshelf.errors import NotFound

from . import pages
from .data import ShelfView

_WILDCARDS = ("0.0.0.0", "::", "")

_COMMON_HEADERS = {
    "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class UIServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, view: ShelfView, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
    ) -> None:
        self.view = view
        self.quiet = quiet
        family_host = host.strip("[]")
        if ":" in family_host:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__((family_host, port), _Handler)
        self.served_host = family_host

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.served_host
        if host in _WILDCARDS:
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def allowed_host(self, header: str | None) -> bool:
        if self.served_host in _WILDCARDS:
            return True  # served on every address on purpose (--host): any name may lead here
        if not header:
            return False
        names = {
            "127.0.0.1",
            "localhost",
            "[::1]",
            self.served_host,
            f"[{self.served_host}]" if ":" in self.served_host else self.served_host,
        }
        return header.lower() in {f"{name}:{self.port}" for name in names}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: UIServer
    server_version = "modelshelf-ui"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if not self.server.allowed_host(self.headers.get("Host")):
            return self._send(421, b"wrong host\n", "text/plain; charset=utf-8", body)
        path = urlsplit(self.path).path
        if path in ("/", ""):
            path = "/index.html"
        relative = path[1:]
        if relative in pages.ASSETS:
            return self._send(200, pages.asset(relative), pages.ASSETS[relative], body)
        if relative.endswith(".json"):
            parsed = pages.parse_data_path(relative[: -len(".json")])
            if parsed is not None:
                return self._data(parsed, body)
        self._send(404, pages.to_json({"error": "not found"}), "application/json", body)

    def _data(self, parsed: tuple[str, str | None, int | None], body: bool) -> None:
        kind, name, number = parsed
        view = self.server.view
        try:
            if kind == "shelf":
                document: Any = view.shelf_document()
            elif kind == "model":
                document = view.model_document(str(name))
            else:
                document = view.version_document(str(name), int(number or 0))
                if document is None:
                    raise NotFound(f"{name} has no live version {number}")
        except NotFound as exc:
            return self._send(404, pages.to_json({"error": str(exc)}), "application/json", body)
        except ModelshelfError as exc:
            return self._send(502, pages.to_json({"error": str(exc)}), "application/json", body)
        except Exception as exc:  # a bug must not take the server down, nor show a traceback
            traceback.print_exception(exc, file=sys.stderr)
            return self._send(
                500, pages.to_json({"error": "internal error"}), "application/json", body
            )
        self._send(200, pages.to_json(document), "application/json", body)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        # A live shelf: always ask again (the view remembers manifests, so asking is cheap).
        self.send_header("Cache-Control", "no-store")
        for header, value in _COMMON_HEADERS.items():
            self.send_header(header, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)
