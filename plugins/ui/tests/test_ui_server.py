"""The local server: its own pages and the shelf's JSON, nothing else, to nobody else."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from modelshelf_ui import pages


def _get(
    server: Any, path: str, host: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """A request with the path sent exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_serves_the_page_with_a_strict_policy(ui_server: Any) -> None:
    status, headers, body = _get(ui_server, "/")
    assert status == 200 and body == pages.asset("index.html")
    assert headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    )
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    for asset, kind in [("/assets/app.js", "text/javascript"), ("/assets/style.css", "text/css")]:
        status, headers, body = _get(ui_server, asset)
        assert (
            status == 200
            and headers["content-type"].startswith(kind)
            and body == pages.asset(asset[1:])
        )


def test_serves_the_documents_as_json(ui_server: Any) -> None:
    status, headers, body = _get(ui_server, "/data/models/team/fraud/_versions/3.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["ref"] == "team/fraud:3"
    status, _, body = _get(ui_server, "/data/models/churn/_versions/5.json")  # deleted
    assert status == 404 and "no live version" in json.loads(body)["error"]
    status, _, body = _get(ui_server, "/data/models/nope/_model.json")
    assert status == 404 and "no model named 'nope'" in json.loads(body)["error"]


@pytest.fixture
def secrets(ui_shelf: Any) -> list[bytes]:
    """Files the server must never show: one on the shelf, one beside it, one on the system."""
    root = Path(ui_shelf.url.removeprefix("file://"))
    (root / "secret.json").write_text("TOPSECRET-shelf")
    (root.parent / "secret.json").write_text("TOPSECRET-beside")
    return [b"TOPSECRET", b"root:x:0:0"]


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/assets/../../../../../../etc/passwd",
        "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/etc/passwd",
        "/secret.json",
        "/../secret.json",
        "/data/../secret.json",
        "/data/models/../../secret.json",
        "/data/models/../../../secret.json",
        "/data/models/%2e%2e/%2e%2e/secret/_model.json",
        "/data/models/churn/_versions/../../../../secret.json",
        "/data/models/churn/_versions/1.json/../../../../../secret.json",
        "/.modelshelf.json",
        "/models/churn/_versions/0000000001.json",
        "/blobs/",
        "/data/models/.git/_model.json",
        "/data/models/_aliases/_model.json",
        "/assets/",
        "/assets/app.js/..",
        "/index.html%00.json",
        "/data/shelf.json/..",
        "/app.js",
        "/style.css",
        "/__init__.py",
        "/assets/__init__.py",
        "/assets/../pages.py",
        "http://127.0.0.1/../../etc/passwd",
    ],
)
def test_no_path_leaves_the_pages_and_the_documents(
    ui_server: Any, secrets: list[bytes], path: str
) -> None:
    status, _, body = _get(ui_server, path)
    assert status in (400, 404), (path, status)
    assert not any(secret in body for secret in secrets)


def test_only_get_and_head(ui_server: Any) -> None:
    status, headers, body = _get(ui_server, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    for method in ("POST", "PUT", "DELETE"):
        assert _get(ui_server, "/data/shelf.json", method=method)[0] == 501


def test_refuses_other_host_names(ui_server: Any) -> None:
    """A page on evil.example whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    assert _get(ui_server, "/data/shelf.json", host=f"evil.example:{ui_server.port}")[0] == 421
    assert _get(ui_server, "/data/shelf.json", host="127.0.0.1")[0] == 421  # wrong port
    assert _get(ui_server, "/data/shelf.json", host=f"localhost:{ui_server.port}")[0] == 200


def test_listens_on_loopback_only_by_default(ui_shelf: Any) -> None:
    from modelshelf_ui.data import ShelfView
    from modelshelf_ui.server import UIServer

    with UIServer(ShelfView(ui_shelf)) as server:
        assert server.server_address[0] == "127.0.0.1"
        assert server.socket.family == socket.AF_INET
