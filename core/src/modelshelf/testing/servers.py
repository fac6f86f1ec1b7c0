"""One launcher for the local servers storage tests run against (moto, Azurite, fake-gcs-server).

>>> command = lambda port: ["my-emulator", "--port", str(port)]
>>> with local_server(command, probe=answers_http("/health"), name="my-emulator") as url:
...     ...                                   # "http://127.0.0.1:<port>"

:func:`local_server` is the start / probe / retry / stop skeleton every emulator needs: the
server runs in its own process group, in a temporary working directory, its output kept in a log
file (a chatty server never blocks on a full pipe) whose tail goes into the error if it does not
start. A port taken between :func:`free_port` choosing it and the server binding it is retried on
another port. A server that binds port 0 itself and says which port it got (``announced``, a
pattern with one group, matched against its output) is never raced at all. On exit the whole
group is stopped, politely then firmly, even on error.

No pytest and no SDK here: plugins' ``testing`` modules, benchmarks and child processes use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["ServerNotStarted", "answers_http", "free_port", "local_server", "patched_environ"]


class ServerNotStarted(RuntimeError):
    """A local server did not answer in time; the message carries the end of its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_http(
    path: str, *, any_status: bool = False, timeout: float = 2.0
) -> Callable[[str], bool]:
    """A probe: true once ``GET <url><path>`` answers 2xx (any HTTP status with ``any_status``:
    an emulator that refuses unsigned requests is up as soon as it refuses)."""

    def probe(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=timeout) as response:
                response.read()
                return True
        except urllib.error.HTTPError:
            return any_status
        except (urllib.error.URLError, OSError):
            return False

    return probe


@contextlib.contextmanager
def patched_environ(env: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, remove) environment variables for the block, then restore them:
    SDKs read their endpoint and credentials from the environment when a client is built."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        _set_environ(env)
        yield
    finally:
        _set_environ(saved)


def _set_environ(env: Mapping[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the whole process group (wrappers such as npx and their children included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    # Children may outlive the leader for a moment; make sure none keeps running.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-2000:].strip()
    except OSError:
        return ""


def _started(
    process: subprocess.Popen[bytes],
    log_path: Path,
    host: str,
    port: int,
    probe: Callable[[str], bool],
    announced: re.Pattern[str] | None,
    timeout: float,
) -> str | None:
    """The server's URL once it answers; ``None`` if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if announced is not None and not port:
            found = announced.search(_tail(log_path))
            port = int(found.group(1)) if found else 0
        if port and probe(f"http://{host}:{port}"):
            return f"http://{host}:{port}"
        time.sleep(0.05)
    return None


@contextlib.contextmanager
def local_server(
    command: Callable[[int], Sequence[str]],
    *,
    probe: Callable[[str], bool],
    name: str,
    port: int | None = None,
    announced: str | None = None,
    host: str = "127.0.0.1",
    start_timeout: float = 30.0,
    attempts: int = 3,
    env: Mapping[str, str | None] | None = None,
) -> Iterator[str]:
    """Start ``command(port)``; yield ``http://host:port`` once ``probe(url)`` is true; stop it.

    ``port`` fixes the port (no retry: the caller chose it); by default a free one is picked for
    each attempt, or ``0`` is passed when the server ``announced`` its own port (a regular
    expression whose first group is the port, searched in the server's output). ``env`` sets
    environment variables for the server only (``None`` removes one it would inherit). Raises :class:`ServerNotStarted` after
    ``attempts`` failed starts, with the command and the end of the server's output.
    """
    pattern = re.compile(announced) if announced else None
    tries = 1 if port is not None else attempts
    child_env = dict(os.environ)
    for variable, value in (env or {}).items():
        if value is None:
            child_env.pop(variable, None)
        else:
            child_env[variable] = value
    with tempfile.TemporaryDirectory(prefix=f"modelshelf-{name}-") as workdir:
        log_path = Path(workdir) / "server.log"
        args: Sequence[str] = ()
        for _ in range(tries):
            chosen = port if port is not None else (0 if pattern else free_port(host))
            args = command(chosen)
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    list(args),
                    cwd=workdir,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so _stop reaches children
                )
            try:
                url = _started(process, log_path, host, chosen, probe, pattern, start_timeout)
                if url is not None:
                    yield url
                    return
            finally:
                _stop(process)
        raise ServerNotStarted(
            f"{name} did not start ({' '.join(args)}); last output: {_tail(log_path) or 'none'}"
        )
