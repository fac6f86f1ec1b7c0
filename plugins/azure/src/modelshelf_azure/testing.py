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
from collections.abc import Iterator
from pathlib import Path

from modelshelf.testing.servers import answers_http, free_port, local_server

__all__ = [
    "DEV_ACCOUNT",
    "DEV_KEY",
    "AzuriteNotFound",
    "azurite",
    "connection_string",
    "create_container",
    "find_azurite",
    "free_port",
]

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


def create_container(connection_string: str, prefix: str = "t") -> str:
    """Create a container with a fresh name on the account of ``connection_string``; return the
    name. Imports the Azure SDK (only when called)."""
    import secrets

    from azure.storage.blob import BlobServiceClient

    name = f"{prefix}{secrets.token_hex(6)}"
    with BlobServiceClient.from_connection_string(connection_string) as service:
        service.create_container(name)
    return name


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


@contextlib.contextmanager
def azurite(*, start_timeout: float = START_TIMEOUT, attempts: int = 3) -> Iterator[str]:
    """Start Azurite (blob service, in memory) on a free port; yield its connection string.

    Started by core's one launcher (:func:`modelshelf.testing.servers.local_server`): its own
    process group (npx and node children included) in a temporary working directory, stopped when
    the block exits, even on error; a port taken before Azurite binds it is retried on another.
    """
    command = find_azurite()
    flags = ["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    with local_server(
        lambda port: [*command, "--blobHost", "127.0.0.1", "--blobPort", str(port), *flags],
        # Any HTTP status means it is up: an unsigned request gets 403.
        probe=answers_http(f"/{DEV_ACCOUNT}?comp=list", any_status=True),
        name="Azurite",
        start_timeout=start_timeout,
        attempts=attempts,
    ) as url:
        yield connection_string(int(url.rsplit(":", 1)[1]))
