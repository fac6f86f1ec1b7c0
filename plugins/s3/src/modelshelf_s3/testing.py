"""Test helpers: a real moto S3 server over HTTP, for this plugin's tests and other suites.

No pytest import here: reliability tests and benchmarks import this too.

>>> from modelshelf_s3.testing import moto_server, reset_moto
>>> with moto_server() as endpoint:          # "http://127.0.0.1:<port>"
...     ...                                  # point boto3 / AWS_ENDPOINT_URL at it
...     reset_moto(endpoint)                 # forget every bucket and object

The server is ``python -m modelshelf_s3._moto_main``, started by core's one launcher
(:mod:`modelshelf.testing.servers`): moto's own WSGI app with writes serialised
(moto's conditional writes are check-then-write; S3's are atomic, see that module) and werkzeug's
access log silenced. It needs ``moto[server]`` installed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import urllib.request
from collections.abc import Iterator, Mapping

from modelshelf.testing.servers import answers_http, local_server, patched_environ

__all__ = [
    "DUMMY_CREDENTIALS",
    "ISOLATED_AWS_ENV",
    "create_bucket",
    "moto_environment",
    "moto_server",
    "reset_moto",
    "reset_moto_auth",
]

#: Credentials moto accepts while authentication is off (its default). Not secrets.
DUMMY_CREDENTIALS: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


#: The environment a test process needs so that boto3 uses dummy credentials and never reads the
#: machine's ~/.aws files or asks an instance metadata service.
ISOLATED_AWS_ENV: Mapping[str, str] = {
    **DUMMY_CREDENTIALS,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_bucket_numbers = itertools.count()
#: Variables that could point boto3 at a real account or another endpoint; cleared in tests.
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3")


@contextlib.contextmanager
def moto_environment() -> Iterator[str]:
    """Start a moto server and point this process (and its children) at it through the
    environment (``AWS_ENDPOINT_URL``, dummy credentials, no real AWS configuration); yield the
    endpoint. The environment is restored on exit."""
    isolated = {**dict.fromkeys(_REAL_AWS_VARIABLES), **ISOLATED_AWS_ENV}
    with (
        patched_environ(isolated),
        moto_server() as endpoint,
        patched_environ({"AWS_ENDPOINT_URL": endpoint}),
    ):
        yield endpoint


@contextlib.contextmanager
def moto_server(
    host: str = "127.0.0.1",
    *,
    startup_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start a moto S3 server on a free port; yield its endpoint URL; stop it on exit.

    ``env`` adds environment variables for the server process only (for example
    ``INITIAL_NO_AUTH_ACTION_COUNT``). The server binds a free port itself and announces it, so
    no other process can take it first (see :func:`modelshelf.testing.servers.local_server`).
    """
    # The server must not inherit a real endpoint or profile; it serves, it does not call out.
    with local_server(
        lambda port: [
            sys.executable,
            "-m",
            "modelshelf_s3._moto_main",
            "--host",
            host,
            "--port",
            str(port),
        ],
        probe=answers_http("/moto-api/data.json"),
        name="moto server (is moto[server] installed?)",
        announced=r"PORT (\d+)",
        host=host,
        start_timeout=startup_timeout,
        attempts=1,
        env={**(env or {}), "AWS_ENDPOINT_URL": None},
    ) as endpoint:
        yield endpoint


def create_bucket(endpoint: str, prefix: str = "test") -> str:
    """Create a bucket with a fresh name on the S3 server at ``endpoint``; return the name.

    Imports boto3 (only when called); the credentials come from the environment."""
    import boto3

    name = f"{prefix}-{os.getpid()}-{next(_bucket_numbers)}"
    client = boto3.client("s3", endpoint_url=endpoint)
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()
    return name


def reset_moto(endpoint: str) -> None:
    """Forget every bucket, object and IAM user on the server (``POST /moto-api/reset``)."""
    _post(f"{endpoint}/moto-api/reset", b"")


def reset_moto_auth(endpoint: str, unauthenticated_requests: float) -> None:
    """Turn moto's authentication on after ``unauthenticated_requests`` more requests.

    ``0`` makes every following request need a known IAM access key with a valid signature and a
    policy allowing the action; ``float("inf")`` turns authentication off again.
    """
    _post(f"{endpoint}/moto-api/reset-auth", str(unauthenticated_requests).encode())


def _post(url: str, data: bytes) -> None:
    # text/plain: with urllib's default form type, Flask would parse the body away from moto.
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
