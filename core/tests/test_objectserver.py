"""The tiny object server of the test kit speaks the protocol its docstring states: conditional
writes, pinned and ranged reads, listings paged by name (with sub-prefixes across page ends)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from modelshelf.testing.objectserver import ObjectServer


@pytest.fixture(scope="module")
def server() -> Iterator[ObjectServer]:
    with ObjectServer() as server:
        server.create_bucket("b")
        yield server


def ask(
    server: ObjectServer, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {name.replace("_", "-"): value for name, value in headers.items()}
        connection.request(method, path, body=body if method == "PUT" else None, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def listing(server: ObjectServer, query: str) -> dict[str, Any]:
    status, _, body = ask(server, "GET", f"/b?{query}")
    assert status == 200
    page: dict[str, Any] = json.loads(body)
    return page


def test_conditional_writes_answer_412_and_every_write_gets_a_new_etag(
    server: ObjectServer,
) -> None:
    status, headers, _ = ask(server, "PUT", "/b/cas/x", b"1", If_None_Match="*")
    assert status == 200
    first = headers["ETag"]
    assert ask(server, "PUT", "/b/cas/x", b"2", If_None_Match="*")[0] == 412
    assert ask(server, "PUT", "/b/cas/x", b"2", If_Match='"nope"')[0] == 412
    assert ask(server, "PUT", "/b/cas/missing", b"2", If_Match=first)[0] == 412
    status, headers, _ = ask(server, "PUT", "/b/cas/x", b"1", If_Match=first)
    assert status == 200 and headers["ETag"] != first  # the same bytes, a new version
    assert ask(server, "GET", "/b/cas/x")[2] == b"1"


def test_reads_are_ranged_and_pinned(server: ObjectServer) -> None:
    etag = ask(server, "PUT", "/b/r/x", b"0123456789")[1]["ETag"]
    status, headers, body = ask(server, "GET", "/b/r/x", Range="bytes=4-", If_Match=etag)
    assert (status, body, headers["Content-Range"]) == (206, b"456789", "bytes 4-9/10")
    assert ask(server, "GET", "/b/r/x", Range="bytes=2-3")[2] == b"23"
    assert ask(server, "GET", "/b/r/x", Range="bytes=10-")[0] == 416
    ask(server, "PUT", "/b/r/x", b"replaced")
    assert ask(server, "GET", "/b/r/x", Range="bytes=4-", If_Match=etag)[0] == 412
    status, headers, body = ask(server, "HEAD", "/b/r/x")
    assert (status, headers["Content-Length"], body) == (200, "8", b"")
    assert "Last-Modified" in headers


def test_listings_page_by_name_and_group_sub_prefixes(server: ObjectServer) -> None:
    for name in ("l/a/1", "l/a/2", "l/a/3", "l/b", "l/c/1", "l/d"):
        ask(server, "PUT", f"/b/{name}", b"x")
    seen: list[str] = []
    token = ""
    while True:  # one entry a page: pages end on the sub-prefixes l/a/ and l/c/ too
        page = listing(server, f"prefix=l/&delimiter=/&limit=1&token={token}")
        seen += page["prefixes"] + [entry["name"] for entry in page["objects"]]
        if not page["next"]:
            break
        token = page["next"]
    assert sorted(seen) == ["l/a/", "l/b", "l/c/", "l/d"]
    flat = listing(server, "prefix=l/a/")
    assert [entry["name"] for entry in flat["objects"]] == ["l/a/1", "l/a/2", "l/a/3"]
    assert flat["next"] is None and flat["prefixes"] == []


def test_missing_things_are_404_and_deletes_are_whole(server: ObjectServer) -> None:
    assert ask(server, "GET", "/b/nothing")[0] == 404
    assert ask(server, "GET", "/nobucket/x")[0] == 404
    assert ask(server, "HEAD", "/nobucket")[0] == 404
    assert ask(server, "PUT", "/nobucket/x", b"1")[0] == 404
    ask(server, "PUT", "/b/d/x", b"1")
    assert ask(server, "DELETE", "/b/d/x")[0] == 200
    assert ask(server, "DELETE", "/b/d/x")[0] == 404
    assert ask(server, "PUT", "/newbucket")[0] == 201
    assert ask(server, "HEAD", "/newbucket")[0] == 200
