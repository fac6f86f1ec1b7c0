"""Test helpers: a real moto S3 server over HTTP, for this plugin's tests and other suites.

No pytest import here: reliability tests and benchmarks import this too.

>>> from modelshelf_s3.testing import moto_server, reset_moto
>>> with moto_server() as endpoint:          # "http://127.0.0.1:<port>"
...     ...                                  # point boto3 / AWS_ENDPOINT_URL at it
...     reset_moto(endpoint)                 # forget every bucket and object

The server is ``python -m modelshelf_s3._moto_main``: moto's own WSGI app with writes serialised
(moto's conditional writes are check-then-write; S3's are atomic, see that module) and werkzeug's
access log silenced. It needs ``moto[server]`` installed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

__all__ = ["DUMMY_CREDENTIALS", "ISOLATED_AWS_ENV", "moto_environment", "moto_server", "reset_moto", "reset_moto_auth"]

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
#: Variables that could point boto3 at a real account or another endpoint; cleared in tests.
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3")


@contextlib.contextmanager
def moto_environment() -> Iterator[str]:
    """Start a moto server and point this process (and its children) at it through the
    environment (``AWS_ENDPOINT_URL``, dummy credentials, no real AWS configuration); yield the
    endpoint. The environment is restored on exit."""
    names = (*_REAL_AWS_VARIABLES, *ISOLATED_AWS_ENV, "AWS_ENDPOINT_URL")
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in _REAL_AWS_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(ISOLATED_AWS_ENV)
        with moto_server() as endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_server(
    host: str = "127.0.0.1",
    *,
    startup_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start a moto S3 server on a free port; yield its endpoint URL; stop it on exit.

    ``env`` adds environment variables for the server process only (for example
    ``INITIAL_NO_AUTH_ACTION_COUNT``). The server's stderr is kept in a pipe drained by a thread
    and included in the error if it fails to start.
    """
    child_env = {**os.environ, **(env or {})}
    # The server must not inherit a real endpoint or profile; it serves, it does not call out.
    child_env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "modelshelf_s3._moto_main", "--host", host, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=child_env,
        text=True,
    )
    stderr_lines: list[str] = []
    assert process.stdout is not None and process.stderr is not None

    def drain(stream: object) -> None:
        # Keep the pipe empty so a chatty server never blocks on a full pipe.
        for line in stream:  # type: ignore[attr-defined]
            if len(stderr_lines) < 200:
                stderr_lines.append(line)

    threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
    try:
        port = _read_port(process, startup_timeout, stderr_lines)
        endpoint = f"http://{host}:{port}"
        _wait_until_answering(endpoint, process, startup_timeout, stderr_lines)
        threading.Thread(target=drain, args=(process.stdout,), daemon=True).start()
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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


def _read_port(process: subprocess.Popen[str], timeout: float, stderr: list[str]) -> int:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    line = result[0] if result else ""
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(
            f"moto server did not start within {timeout:.0f}s (is moto[server] installed?): "
            + "".join(stderr[-20:]).strip()
        )
    return int(line.split()[1])


def _wait_until_answering(
    endpoint: str, process: subprocess.Popen[str], timeout: float, stderr: list[str]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5) as response:
                response.read()
            return
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"moto server at {endpoint} did not answer: " + "".join(stderr[-20:]).strip()
                ) from None
            time.sleep(0.05)
