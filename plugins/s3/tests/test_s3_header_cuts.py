"""Answers whose header block is cut short: retried, then BackendUnavailable, never misread.

``http.client`` takes an EOF at a header-line boundary for the end of the headers, so a connection
closed just before a header line gives a complete-looking answer without that header and every one
after it; without Content-Length the body reads as empty. A proxy between the client and moto cuts
the first ``times`` answers carrying a given header just before it
(:meth:`~modelshelf.testing.faultproxy.FaultProxy.cut_headers`; the fault contract holds the
promises every backend shares). An S3Storage must then return
the right content (the request is sent again) or, if every answer is cut, raise BackendUnavailable:
never an empty body, an empty listing, or a raw KeyError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from modelshelf.errors import BackendUnavailable
from modelshelf.testing.faultproxy import Fault, FaultProxy
from modelshelf_s3 import open_storage
from modelshelf_s3.storage import S3Storage

#: "Every answer": more than any retry budget of the plugin or botocore.
ALWAYS = 1000


@pytest.fixture
def cut(moto_endpoint: str, bucket: str) -> Iterator[Callable[..., tuple[Fault, S3Storage]]]:
    """``cut(header, times=1, skip=0)`` -> (the armed fault, an S3Storage on ``s3://<bucket>/p``
    behind a :class:`FaultProxy` that cuts answers before ``header``)."""
    made: list[tuple[FaultProxy, S3Storage]] = []

    def make(header: str, times: int = 1, skip: int = 0) -> tuple[Fault, S3Storage]:
        proxy = FaultProxy(moto_endpoint)
        # Few botocore attempts, so that the "always cut" cases stay fast.
        storage = open_storage(f"s3://{bucket}/p", endpoint_url=proxy.endpoint, max_attempts=2)
        made.append((proxy, storage))
        return proxy.cut_headers(header, times=times, skip=skip), storage

    yield make
    for proxy, storage in made:
        storage.close()
        proxy.close()


@pytest.fixture
def direct(bucket: str) -> Iterator[S3Storage]:
    """The same shelf over a clean connection."""
    storage = open_storage(f"s3://{bucket}/p")
    yield storage
    storage.close()


def _one_line_unavailable(exc: pytest.ExceptionInfo[BackendUnavailable]) -> None:
    message = str(exc.value)
    assert "\n" not in message and "incomplete answers" in message, message
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


@pytest.mark.parametrize("header", ["Content-Length", "ETag"])
def test_read_cut_before_a_header_is_read_again(
    header: str, direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    etag = direct.put_if_absent("models/m/_versions/0000000001.json", b'{"version": 1}')
    proxy, storage = cut(header)
    stored = storage.read("models/m/_versions/0000000001.json")
    assert proxy.hits == 1
    assert (stored.data, stored.etag) == (b'{"version": 1}', etag)


def test_read_always_cut_is_backend_unavailable(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    direct.put_if_absent("record.json", b"{}")
    proxy, storage = cut("Content-Length", times=ALWAYS)
    with pytest.raises(BackendUnavailable) as exc:
        storage.read("record.json")
    _one_line_unavailable(exc)
    assert proxy.hits > 1


def test_read_stream_cut_before_content_length_is_read_again(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    payload = bytes(range(256)) * 1024
    direct.put_if_absent("blob", payload)
    proxy, storage = cut("Content-Length")
    assert b"".join(storage.read_stream("blob", chunk_size=64 * 1024)) == payload
    assert proxy.hits == 1


@pytest.mark.parametrize("header", ["Content-Length", "ETag", "Last-Modified"])
def test_stat_cut_before_a_header_is_asked_again(
    header: str, direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    direct.put_if_absent("blob", b"x" * 1234)
    expected = direct.stat("blob")
    proxy, storage = cut(header)
    info = storage.stat("blob")
    assert proxy.hits == 1
    assert info is not None and (info.size, info.etag) == (
        1234,
        expected.etag if expected else None,
    )


def test_stat_always_cut_is_backend_unavailable(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    direct.put_if_absent("blob", b"x")
    proxy, storage = cut("Content-Length", times=ALWAYS)
    with pytest.raises(BackendUnavailable) as exc:
        storage.stat("blob")
    _one_line_unavailable(exc)
    assert proxy.hits > 1


def test_empty_object_is_not_taken_for_a_cut_answer(direct: S3Storage) -> None:
    # Content-Length 0 is a complete answer: only a missing header means a cut.
    direct.put_if_absent("empty", b"")
    info = direct.stat("empty")
    assert info is not None and info.size == 0
    assert direct.read("empty").data == b""
    assert b"".join(direct.read_stream("empty")) == b""


def test_listing_cut_before_content_length_is_not_empty(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    for name in ("a", "b", "c"):
        direct.put_if_absent(f"models/m/{name}.json", b"{}")
    proxy, storage = cut("Content-Length")
    keys = sorted(info.key for info in storage.list("models/m/"))
    assert proxy.hits == 1
    assert keys == ["models/m/a.json", "models/m/b.json", "models/m/c.json"]
    proxy, storage = cut("Content-Length")
    assert list(storage.list_prefixes("models/")) == ["models/m/"]
    assert proxy.hits == 1


@pytest.mark.parametrize("listing", ["list", "list_prefixes"])
def test_listing_always_cut_is_backend_unavailable(
    listing: str, direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    direct.put_if_absent("models/m/a.json", b"{}")
    proxy, storage = cut("Content-Length", times=ALWAYS)
    with pytest.raises(BackendUnavailable) as exc:
        list(getattr(storage, listing)("models/"))
    _one_line_unavailable(exc)
    assert proxy.hits > 1


def test_create_whose_answer_lost_its_etag_reports_the_real_etag(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    proxy, storage = cut("ETag")  # the first answer with an ETag is the PutObject's
    etag = storage.put_if_absent("marker.json", b'{"by": "me"}')
    assert proxy.hits == 1
    assert direct.read("marker.json").etag == etag
    info = direct.stat("marker.json")
    assert info is not None and info.etag == etag


def test_compare_and_swap_whose_answer_lost_its_etag_reports_the_real_etag(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    first = direct.put_if_absent("alias.json", b"1")
    proxy, storage = cut("ETag")
    etag = storage.put_if_match("alias.json", b"2", first)
    assert proxy.hits == 1
    assert (direct.read("alias.json").data, direct.read("alias.json").etag) == (b"2", etag)


def test_write_whose_etag_never_arrives_is_backend_unavailable(
    direct: S3Storage, cut: Callable[..., tuple[Fault, S3Storage]]
) -> None:
    proxy, storage = cut("ETag", times=ALWAYS)
    with pytest.raises(BackendUnavailable, match="could not be confirmed"):
        storage.put_if_absent("marker.json", b"{}")
    assert proxy.hits > 1
    assert direct.read("marker.json").data == b"{}"  # the write itself landed
