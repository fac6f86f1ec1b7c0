"""Run a throw-away Azurite blob server, for tests, reliability suites and benchmarks.

>>> from modelshelf_azure.testing import azurite
>>> with azurite() as connection_string:
...     shelf = modelshelf.open("az://models/x", connection_string=connection_string)

This module imports neither pytest nor the Azure SDK. Azurite is found, in order, at:

1. the ``AZURITE_BLOB`` environment variable (a path to ``azurite-blob``, or a command line);
2. ``node_modules/.bin/azurite-blob`` in the current directory or any parent, then in any parent of
   this package (so an editable install inside the repository finds the repository's copy);
3. ``npx --no-install azurite-blob`` when ``npx`` is on ``PATH`` (never downloads anything).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: The well-known Azurite / Azure Storage Emulator development account (public, documented).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: Seconds to wait for Azurite to answer before giving up.
START_TIMEOUT = 60.0


class AzuriteNotFound(RuntimeError):
    """No azurite-blob executable could be found."""


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The connection string of the development account on a local Azurite."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{DEV_ACCOUNT};"
    )


def find_azurite() -> list[str]:
    """The command line that starts ``azurite-blob``, or :class:`AzuriteNotFound`."""
    override = os.environ.get("AZURITE_BLOB")
    if override:
        return shlex.split(override)
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / "node_modules" / ".bin" / "azurite-blob"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return [str(candidate)]
    npx = shutil.which("npx")
    if npx:
        return [npx, "--no-install", "azurite-blob"]
    raise AzuriteNotFound(
        "azurite-blob not found: run `npm install` at the repository root (package.json lists "
        "azurite), or set AZURITE_BLOB to the azurite-blob executable"
    )


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """True once Azurite answers HTTP on ``port`` (any status: an unsigned request gets 403)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{DEV_ACCOUNT}?comp=list", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the whole process group (npx and node children included), politely then firmly."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Children may outlive the leader for a moment; make sure none keeps running.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def azurite(*, start_timeout: float = START_TIMEOUT, attempts: int = 3) -> Iterator[str]:
    """Start Azurite (blob service, in memory) on a free port; yield its connection string.

    The server runs in its own process group, in a temporary working directory, and is stopped
    (the whole group) when the block exits, even on error. A port taken between choosing it and
    Azurite binding it is retried on another port, up to ``attempts`` times.
    """
    command = find_azurite()
    with tempfile.TemporaryDirectory(prefix="modelshelf-azurite-") as workdir:
        log_path = Path(workdir) / "azurite.log"
        last_error = ""
        for _ in range(attempts):
            port = free_port()
            args = [
                *command,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    args,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so _stop reaches children
                )
            try:
                deadline = time.monotonic() + start_timeout
                while time.monotonic() < deadline and process.poll() is None:
                    if _answers(port):
                        break
                    time.sleep(0.1)
                if process.poll() is None and _answers(port):
                    yield connection_string(port)
                    return
                last_error = log_path.read_text(errors="replace")[-2000:].strip()
            finally:
                _stop(process)
        raise RuntimeError(
            f"Azurite did not start ({' '.join(command)}); last output: {last_error or 'none'}"
        )
