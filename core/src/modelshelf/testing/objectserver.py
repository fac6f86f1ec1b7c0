"""A tiny object store served over HTTP, in the standard library: the service the plugin guide's
worked backend talks to, and a real server to try a backend on without any cloud.

Objects live in memory, in buckets; each write gets a new etag, even of identical bytes. The
protocol (every answer carries ``Content-Length``; errors are ``{"error": "..."}``):

======================================  ==========================================================
request                                 answer
======================================  ==========================================================
``PUT /BUCKET``                         201 creates the bucket (200 if it exists)
``HEAD /BUCKET``                        200, or 404 when there is no such bucket
``GET /BUCKET?prefix=P&delimiter=/``    one page of the listing, in name order, as JSON:
``&token=T&limit=N``                    ``{"objects": [{"name", "size", "etag", "modified"}],
                                        "prefixes": [...], "next": T or null}``
``GET /BUCKET/NAME``                    the object, with ``ETag`` and ``Last-Modified``;
                                        ``Range: bytes=A-`` or ``bytes=A-B`` gives 206;
                                        ``If-Match: ETAG`` gives 412 unless it is that version
``HEAD /BUCKET/NAME``                   the same headers, no body
``PUT /BUCKET/NAME``                    stores the body (200, new ``ETag``); ``If-None-Match: *``
                                        gives 412 if the object exists, ``If-Match: ETAG`` 412
                                        unless it is that version; a write is whole or not at all
``DELETE /BUCKET/NAME``                 200, or 404 when there is no such object
======================================  ==========================================================

Use it in tests as a context manager (it serves from threads of the calling process)::

    with ObjectServer() as server:
        server.create_bucket("models")
        ...  # requests to server.endpoint, "http://127.0.0.1:PORT"

or run it alone: ``python -m modelshelf.testing.objectserver --port 9000``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import itertools
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ObjectServer"]

#: The most entries (objects and prefixes) one listing page holds, as on S3, Azure and GCS.
PAGE_SIZE = 1000
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class _Object:
    data: bytes
    etag: str
    modified: dt.datetime


class _Store:
    """The buckets and their objects; one lock makes every write atomic."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, _Object]] = {}
        self._generations = itertools.count(1)

    def new_version(self, data: bytes) -> _Object:
        # Whole seconds, as an HTTP date carries them: a listing and a HEAD of one object must
        # agree, since gc compares listed times with a time read by HEAD.
        modified = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return _Object(data, f'"{next(self._generations)}"', modified)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # answers framed by Content-Length; connections kept open
    server: _Server

    # --- answering ---------------------------------------------------------------------------

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        # Content-Length first: an answer cut before a later header still says how long it is.
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, json.dumps({"error": message}).encode(), _JSON)

    def _object_headers(self, found: _Object) -> dict[str, str]:
        return {
            "ETag": found.etag,
            "Last-Modified": email.utils.format_datetime(found.modified, usegmt=True),
        }

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test run makes thousands of requests."""

    # --- parsing -------------------------------------------------------------------------------

    def _target(self) -> tuple[dict[str, _Object] | None, str, str, dict[str, list[str]]]:
        """The bucket (``None`` if missing), its name, the object name and the query."""
        parts = urlsplit(self.path)
        bucket, _, name = unquote(parts.path).lstrip("/").partition("/")
        return self.server.store.buckets.get(bucket), bucket, name, parse_qs(parts.query)

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "a request body needs a Content-Length")
            return None
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            self.close_connection = True  # the client went away mid-body: nothing is stored
            return None
        return data

    # --- methods -------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        page: dict[str, Any] | None = None
        with self.server.store.lock:
            objects, bucket, name, query = self._target()
            if objects is not None and not name and self.command == "GET":
                page = _page(objects, query)
            found = objects.get(name) if objects is not None else None
        if objects is None:
            return self._error(404, f"no such bucket: {bucket}")
        if not name:
            if self.command == "HEAD":
                return self._answer(200)
            if page is None:
                return self._error(400, f"a listing takes prefix, delimiter, token, limit: {query}")
            return self._answer(200, json.dumps(page).encode(), _JSON)
        if found is None:
            return self._error(404, f"no such object: {name}")
        pinned = self.headers.get("If-Match")
        if pinned is not None and pinned != found.etag:
            return self._error(412, f"{name} is not at version {pinned}")
        headers = self._object_headers(found)
        wanted = self.headers.get("Range")
        if wanted is None:
            return self._answer(200, found.data, headers)
        match = _RANGE.match(wanted)
        size = len(found.data)
        start = int(match.group(1)) if match else size
        end = min(int(match.group(2)) + 1, size) if match and match.group(2) else size
        if start >= size or end <= start:
            return self._error(416, f"range {wanted} is outside a {size}-byte object")
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self._answer(206, found.data[start:end], headers)

    def do_PUT(self) -> None:
        data = self._body()
        if data is None:
            return None
        store = self.server.store
        with store.lock:
            objects, bucket, name, _ = self._target()
            if not name:
                created = objects is None
                store.buckets.setdefault(bucket, {})
                return self._answer(201 if created else 200)
            if objects is None:
                return self._error(404, f"no such bucket: {bucket}")
            current = objects.get(name)
            if self.headers.get("If-None-Match") == "*" and current is not None:
                return self._error(412, f"{name} exists")
            expected = self.headers.get("If-Match")
            if expected is not None and (current is None or current.etag != expected):
                return self._error(412, f"{name} is not at version {expected}")
            objects[name] = stored = store.new_version(data)
        self._answer(200, headers={"ETag": stored.etag})

    def do_DELETE(self) -> None:
        with self.server.store.lock:
            objects, bucket, name, _ = self._target()
            if objects is None:
                return self._error(404, f"no such bucket: {bucket}")
            if objects.pop(name, None) is None:
                return self._error(404, f"no such object: {name}")
        self._answer(200)


_JSON = {"Content-Type": "application/json"}


def _page(objects: dict[str, _Object], query: dict[str, list[str]]) -> dict[str, Any] | None:
    """One page of the listing ``query`` asks for; ``None`` for a query that makes no sense."""
    prefix = query.get("prefix", [""])[0]
    delimiter = query.get("delimiter", [""])[0]
    after = query.get("token", [""])[0]
    try:
        limit = min(max(1, int(query.get("limit", [str(PAGE_SIZE)])[0])), PAGE_SIZE)
    except ValueError:
        return None
    entries: list[dict[str, Any]] = []
    prefixes: list[str] = []
    last = ""
    for name in sorted(objects):
        if not name.startswith(prefix) or name <= after:
            continue
        if delimiter and after.endswith(delimiter) and name.startswith(after):
            continue  # inside the sub-prefix the last page ended on
        if len(entries) + len(prefixes) == limit:
            break
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest.split(delimiter, 1)[0] + delimiter
            if not prefixes or prefixes[-1] != common:
                prefixes.append(common)
                last = common
            continue
        found = objects[name]
        entries.append(
            {
                "name": name,
                "size": len(found.data),
                "etag": found.etag,
                "modified": found.modified.isoformat(),
            }
        )
        last = name
    else:
        last = ""  # the listing ended on this page
    return {"objects": entries, "prefixes": prefixes, "next": last or None}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: _Store


class ObjectServer:
    """The object server on ``127.0.0.1``, serving from threads until :meth:`close`."""

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.store = _Store()
        self.port: int = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="modelshelf-objectserver", daemon=True
        )
        self._thread.start()

    def create_bucket(self, name: str) -> None:
        with self._server.store.lock:
            self._server.store.buckets.setdefault(name, {})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> ObjectServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A tiny in-memory object store over HTTP.")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket")
    options = parser.parse_args()
    server = ObjectServer(options.port)
    for bucket in options.bucket:
        server.create_bucket(bucket)
    print(f"serving on {server.endpoint}", flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
