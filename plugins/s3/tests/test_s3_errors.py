"""Errors a user can act on: one line, the right modelshelf exception, and never a credential.

Wrong credentials and read-only credentials are checked against a second moto server with its
IAM authentication switched on (moto then checks access keys, SigV4 signatures and policies).
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf.errors import (
    AccessDenied,
    BackendUnavailable,
    InvalidName,
    KeyNotFound,
    ModelshelfError,
    ReadOnlyShelf,
    StorageError,
)
from modelshelf.testing.servers import free_port
from modelshelf_s3 import open_storage
from modelshelf_s3.testing import moto_server, reset_moto_auth

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz"


def failure(action: Callable[[], Any]) -> ModelshelfError:
    """Run ``action``, which must fail with a modelshelf error, and return that error."""
    with pytest.raises(ModelshelfError) as info:
        action()
    error = info.value
    text = str(error)
    assert "\n" not in text and text, repr(text)
    return error


def full_text(error: BaseException) -> str:
    """Everything a user could see: message, repr and the whole printed traceback."""
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


# --- bad input, before any I/O ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "kind", "fragment"),
    [
        ("gs://bucket/p", {}, InvalidName, "not an S3 shelf URL"),
        ("s3://x/p", {}, InvalidName, "invalid S3 bucket name 'x'"),
        ("s3://bucket/a/../b", {}, InvalidName, "'.' and '..'"),
        ("s3://bucket/p", {"colour": "blue"}, StorageError, "unknown option 'colour'"),
        ("s3://bucket/p?colour=blue", {}, StorageError, "unknown option 'colour'"),
        ("s3://bucket/p", {"max_attempts": "many"}, StorageError, "max_attempts='many'"),
        ("s3://bucket/p", {"connect_timeout": -1}, StorageError, "connect_timeout"),
        ("s3://bucket/p", {"multipart_chunksize": 1024}, StorageError, "5 MiB"),
        ("s3://bucket/p", {"retry_mode": "forever"}, StorageError, "standard, adaptive"),
        ("s3://bucket/p", {"endpoint_url": "localhost:9000"}, StorageError, "http://"),
    ],
)
def test_bad_url_or_option(url: str, options: dict[str, Any], kind: type, fragment: str) -> None:
    error = failure(lambda: open_storage(url, **options))
    assert isinstance(error, kind)
    assert fragment in str(error)


def test_credentials_in_url_are_refused_and_not_echoed() -> None:
    error = failure(lambda: open_storage(f"s3://AKIAEXAMPLE:{SECRET}@bucket/p"))
    assert "must not contain credentials" in str(error)
    assert SECRET not in full_text(error)
    error = failure(lambda: open_storage("s3://bucket/p", endpoint_url=f"ftp://u:{SECRET}@h"))
    assert SECRET not in full_text(error)


def test_options_from_query_string(bucket: str, moto_endpoint: str) -> None:
    storage = open_storage(
        f"s3://{bucket}/p?max_attempts=2&multipart_chunksize=6291456&region=eu-west-1",
        max_attempts=3,  # a keyword wins over the query string
    )
    assert storage.options.max_attempts == 3
    assert storage.options.multipart_chunksize == 6 * (1 << 20)
    assert storage.client.meta.region_name == "eu-west-1"
    assert storage.url == f"s3://{bucket}/p"  # no query string in messages
    assert storage.options.endpoint_url == moto_endpoint  # from AWS_ENDPOINT_URL
    storage.put_if_absent("k", b"v")
    assert storage.read("k").data == b"v"


# --- service-side errors ------------------------------------------------------------------------


def test_missing_bucket(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    storage = open_storage("s3://no-such-bucket-here/team")
    source = tmp_path / "f"
    source.write_bytes(b"x" * 10)
    for action in (
        lambda: storage.stat("a.json"),  # HEAD: a bodiless 404, told apart with one HeadBucket
        lambda: storage.read("a.json"),
        lambda: list(storage.read_stream("a.json")),
        lambda: list(storage.list("models/")),
        lambda: list(storage.list_prefixes("models/")),
        lambda: storage.put_if_absent("a.json", b"{}"),
        lambda: storage.put_if_match("a.json", b"{}", '"abc"'),
        lambda: storage.put_file("blobs/a", source),
        lambda: storage.delete("a.json"),
    ):
        error = failure(action)
        assert type(error) is StorageError, repr(error)
        assert str(error) == (
            "bucket 'no-such-bucket-here' does not exist (shelf s3://no-such-bucket-here/team, "
            f"endpoint {moto_endpoint}): create it or check the name"
        )
        assert SECRET not in full_text(error)


def test_missing_bucket_through_the_shelf(moto_endpoint: str, tmp_path: Path) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    shelf = modelshelf.open("s3://no-such-bucket-here/team", cache=tmp_path / "cache")
    error = failure(lambda: shelf.upload("churn", source))
    assert "bucket 'no-such-bucket-here' does not exist" in str(error)


def test_missing_key_is_not_a_missing_bucket(s3_storage: Any) -> None:
    assert s3_storage.stat("absent") is None  # the one HeadBucket check passes
    with pytest.raises(KeyNotFound):
        s3_storage.read("absent")


def test_nothing_listening_is_backend_unavailable_quickly(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = open_storage(
        "s3://some-bucket/p", endpoint_url=endpoint, connect_timeout=0.5, max_attempts=2
    )
    sent: list[int] = []
    storage.client.meta.events.register("before-send.s3", lambda **kw: sent.append(1))
    started = time.monotonic()
    error = failure(lambda: storage.read("a.json"))
    assert time.monotonic() - started < 5
    assert len(sent) == 2  # max_attempts counts the first attempt too
    assert isinstance(error, BackendUnavailable)
    assert f"cannot reach S3 endpoint {endpoint} for shelf s3://some-bucket/p" in str(error)
    assert "after 2 attempts" in str(error)
    assert SECRET not in full_text(error)
    storage = open_storage(
        "s3://some-bucket/p", endpoint_url=endpoint, connect_timeout=0.5, max_attempts=1
    )
    for action in (
        lambda: storage.stat("a"),
        lambda: list(storage.list("")),
        lambda: storage.put_if_absent("a", b""),
    ):
        assert isinstance(failure(action), BackendUnavailable)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP endpoint that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_silent_endpoint_times_out_as_backend_unavailable(
    moto_endpoint: str, silent_server: str
) -> None:
    storage = open_storage(
        "s3://some-bucket/p", endpoint_url=silent_server, read_timeout=0.3, max_attempts=1
    )
    started = time.monotonic()
    error = failure(lambda: storage.stat("a.json"))
    assert time.monotonic() - started < 5
    assert isinstance(error, BackendUnavailable)
    assert "ReadTimeoutError" in str(error)


def test_no_credentials(moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    storage = open_storage(f"s3://{bucket}/p")
    error = failure(lambda: storage.read("a.json"))
    assert isinstance(error, AccessDenied)
    assert "no AWS credentials found for shelf" in str(error)
    assert "AWS_PROFILE" in str(error) and "AWS_ACCESS_KEY_ID" in str(error)


def test_unknown_profile(moto_endpoint: str) -> None:
    error = failure(lambda: open_storage("s3://some-bucket/p", profile="no-such-profile"))
    assert isinstance(error, AccessDenied)
    assert "'no-such-profile'" in str(error)


# --- authentication switched on -----------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A moto server checking credentials, with a bucket, a reader and a writer profile."""
    import boto3

    with moto_server() as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="guarded")
        s3.put_object(Bucket="guarded", Key="existing.json", Body=b"{}")
        keys = {}
        for user, actions in (
            ("reader", ["s3:GetObject", "s3:ListBucket"]),
            ("writer", ["s3:*"]),
        ):
            iam.create_user(UserName=user)
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        credentials = tmp_path_factory.mktemp("aws-auth") / "credentials"
        profiles = {
            "reader": keys["reader"],
            "writer": keys["writer"],
            "wrong-secret": (keys["writer"][0], SECRET),
            "unknown-key": ("AKIAUNKNOWNKEY000000", SECRET),
        }
        credentials.write_text(
            "".join(
                f"[{name}]\naws_access_key_id = {kid}\naws_secret_access_key = {secret}\n"
                for name, (kid, secret) in profiles.items()
            )
        )
        reset_moto_auth(endpoint, 0)  # from now on every request must be authorised
        yield {"endpoint": endpoint, "credentials": credentials, "keys": keys}


@pytest.fixture
def guarded(
    auth_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Any]]:
    """``guarded(profile) -> S3Storage`` on the authenticating server.

    The shelf is the bucket root: moto 5.2 miscomputes the SigV4 signature of a listing whose
    ``prefix`` query parameter contains ``/`` (SignatureDoesNotMatch with valid keys), so listings
    here use prefixes without ``/``.
    """
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(auth_server["credentials"]))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    opened: list[Any] = []

    def make(profile: str) -> Any:
        storage = open_storage(
            "s3://guarded", profile=profile, endpoint_url=auth_server["endpoint"]
        )
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


def test_writer_credentials_work(guarded: Callable[[str], Any]) -> None:
    storage = guarded("writer")
    assert storage.read("existing.json").data == b"{}"
    storage.put_if_absent("written.json", b"1")
    assert storage.read("written.json").data == b"1"


def test_read_only_credentials(
    guarded: Callable[[str], Any], auth_server: dict[str, Any], tmp_path: Path
) -> None:
    storage = guarded("reader")
    assert storage.read("existing.json").data == b"{}"
    assert [i.key for i in storage.list("existing")] == ["existing.json"]
    source = tmp_path / "f"
    source.write_bytes(b"data")
    reader_secret = auth_server["keys"]["reader"][1]
    for action in (
        lambda: storage.put_if_absent("new.json", b"{}"),
        lambda: storage.put_if_match("existing.json", b"{}", storage.read("existing.json").etag),
        lambda: storage.put_file("blobs/new", source),
        lambda: storage.delete("existing.json"),
    ):
        error = failure(action)
        assert isinstance(error, ReadOnlyShelf), repr(error)
        assert "shelf s3://guarded is read-only for these credentials" in str(error)
        assert reader_secret not in full_text(error)
    assert storage.read("existing.json").data == b"{}"


@pytest.mark.parametrize(
    ("profile", "code"),
    [("wrong-secret", "SignatureDoesNotMatch"), ("unknown-key", "InvalidAccessKeyId")],
)
def test_bad_credentials(guarded: Callable[[str], Any], profile: str, code: str) -> None:
    storage = guarded(profile)
    for action in (
        lambda: storage.read("existing.json"),
        lambda: list(storage.list("")),
        lambda: storage.put_if_absent("x.json", b"{}"),
    ):
        error = failure(action)
        assert type(error) is AccessDenied, repr(error)
        assert str(error).startswith(f"S3 refused the credentials for shelf s3://guarded ({code})")
        assert "AWS_PROFILE" in str(error)
        assert SECRET not in full_text(error)
    # HEAD answers have no body, so only the status says "forbidden".
    error = failure(lambda: storage.stat("existing.json"))
    assert isinstance(error, AccessDenied) and SECRET not in full_text(error)
