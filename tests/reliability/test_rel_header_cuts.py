"""Answers whose header block is cut short: the connection closes at a header-line boundary.

``http.client`` takes an EOF at a line boundary for the end of the headers, so the client sees a
plausible answer that lacks some headers (and, without Content-Length, has an empty body). One of
the faults :class:`~modelshelf.testing.faultproxy.FaultProxy` injects at random, made
deterministic here with its ``cut_headers``: the first answer carrying a given header is cut just
before it. Each operation must then succeed with the right content or fail with a one-line
modelshelf error, and must never mistake the fault for a missing model or a damaged record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import InvalidRecord, NotFound
from modelshelf.testing.faultproxy import FaultProxy
from rel_backends import (
    Backend,
    azure_connection_string,
    blob_port,
    new_azure_backend,
    new_gcs_backend,
    new_s3_backend,
    one_line_error,
    tree_digests,
)

HEADERS = ["Content-Length", "Content-Range", "ETag", "Last-Modified", "Content-Type"]
OPS = ["upload", "download", "versions"]

#: (backend, header) -> (where the raw exception comes from, ops it breaks), as measured.
RAW = {}
#: Cases that fail or pass from run to run (which request meets the cut first varies): not strict.
#: (The GCS ones are fixed: GCSStorage retries malformed answers, then raises BackendUnavailable.)
FLAKY: set[tuple[str, str]] = set()
NOT_SEEN = {("s3", "Content-Range")}  # moto sends no Content-Range to these requests


def _cases() -> list[Any]:
    cases = []
    for kind in ("s3", "azure", "gcs"):
        for header in HEADERS:
            if (kind, header) in NOT_SEEN:
                continue
            for op in OPS:
                marks = []
                if (kind, header) in RAW:
                    strict = (kind, header) not in FLAKY
                    marks.append(
                        pytest.mark.xfail(
                            strict=strict,
                            reason=f"defect: raw exception escapes {RAW[(kind, header)]}",
                        )
                    )
                cases.append(
                    pytest.param(kind, header, op, marks=marks, id=f"{kind}-{header}-{op}")
                )
    return cases


def _cutting(port: int, header: str, skip: int) -> FaultProxy:
    proxy = FaultProxy(port)
    proxy.cut_headers(header, skip=skip)
    return proxy


def _through(
    kind: str, request: pytest.FixtureRequest
) -> tuple[Backend, Callable[..., tuple[FaultProxy, Backend]]]:
    """A clean backend, and ``cut(header, skip=0)`` giving a proxy and the same shelf behind it."""
    if kind == "s3":
        endpoint = request.getfixturevalue("rel_moto")
        clean = new_s3_backend(endpoint)

        def cut(header: str, skip: int = 0) -> tuple[FaultProxy, Backend]:
            proxy = _cutting(int(endpoint.rsplit(":", 1)[1]), header, skip)
            return proxy, Backend("s3", clean.url, {"endpoint_url": proxy.endpoint}, clean.env)

    elif kind == "azure":
        connection = request.getfixturevalue("rel_azurite")
        clean = new_azure_backend(connection)
        small = 64 * 1024

        def cut(header: str, skip: int = 0) -> tuple[FaultProxy, Backend]:
            proxy = _cutting(blob_port(connection), header, skip)
            options = {
                "connection_string": azure_connection_string(connection, proxy.endpoint),
                "max_single_put_size": small,
                "max_block_size": small,
                "max_chunk_get_size": small,
            }
            return proxy, Backend("azure", clean.url, options)

    else:
        host = request.getfixturevalue("rel_gcs")
        clean = new_gcs_backend(host)

        def cut(header: str, skip: int = 0) -> tuple[FaultProxy, Backend]:
            proxy = _cutting(int(host.rsplit(":", 1)[1]), header, skip)
            env = {**clean.env, "STORAGE_EMULATOR_HOST": proxy.endpoint}
            return proxy, Backend("gcs", clean.url, {"chunk_size": 256 * 1024}, env)

    return clean, cut


@pytest.mark.parametrize(("kind", "header", "op"), _cases())
def test_answer_cut_inside_headers(
    kind: str, header: str, op: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clean, cut = _through(kind, request)
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(os.urandom(300_000))
    (model / "c.json").write_bytes(b"{}")
    writer = clean.open(tmp_path / "cache-writer")
    writer.upload("m", model)
    expected = tree_digests(model)
    proxy, faulty = cut(header)
    shelf = faulty.open(tmp_path / "cache-faulty")
    try:
        if op == "upload":
            (model / "c.json").write_bytes(os.urandom(20))
            version = shelf.upload("m", model)
            assert {f.path: f.sha256 for f in version.files} == tree_digests(model)
        elif op == "download":
            assert tree_digests(shelf.download("m:1", tmp_path / "dest")) == expected
        else:
            assert [v.version for v in shelf.versions("m")] == [1]
    except Exception as exc:
        one_line_error(exc)
        assert not isinstance(exc, NotFound | InvalidRecord), (
            f"a network fault read as {type(exc).__name__}: {exc}"
        )
    finally:
        proxy.close()
    assert writer.verify() == []
    if proxy.injected["cut-headers"] == 0:
        pytest.skip(f"no answer to this operation carries {header}: nothing was cut")


def test_cut_manifest_read_never_poisons_the_record_cache(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clean, cut = _through("s3", request)
    (tmp_path / "f.bin").write_bytes(b"x" * 1000)
    clean.open(tmp_path / "cache-writer").upload("m", tmp_path / "f.bin")
    # Answers with Content-Length, in order: GET marker, list versions, GET manifest.
    proxy, faulty = cut("Content-Length", skip=2)
    try:
        faulty.open(tmp_path / "cache").get("m:1")
    except Exception as exc:
        one_line_error(exc)
    finally:
        proxy.close()
    assert proxy.injected["cut-headers"] == 1
    # Same cache, healthy network: must work.
    assert clean.open(tmp_path / "cache").get("m:1").version == 1


def test_cut_listing_is_not_an_empty_model(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    clean, cut = _through("s3", request)
    (tmp_path / "f.bin").write_bytes(b"x" * 1000)
    clean.open(tmp_path / "cache-writer").upload("m", tmp_path / "f.bin")
    proxy, faulty = cut("Content-Length", skip=2)  # HEAD marker, GET marker, then the listing
    try:
        assert faulty.open(tmp_path / "cache").get("m:1").version == 1
    except Exception as exc:
        one_line_error(exc)
        assert not isinstance(exc, NotFound), f"a network fault read as a missing model: {exc}"
    finally:
        proxy.close()
    assert proxy.injected["cut-headers"] == 1
