"""Backends under test and small helpers shared by the reliability tests and their child processes.

A :class:`Backend` is everything needed to open one fresh shelf, in this process or in a child:
URL, storage options, and the environment variables the storage SDK reads. No pytest here (child
processes import this module), and no credential beyond the public emulator ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelshelf.testing.servers import patched_environ
from modelshelf_s3.testing import ISOLATED_AWS_ENV

#: Full counts (the figures in docs/reliability.md) instead of the quick CI counts.
FULL = os.environ.get("MODELSHELF_RELIABILITY_FULL", "") not in ("", "0", "false", "no")


def count(ci: int, full: int) -> int:
    """``full`` under MODELSHELF_RELIABILITY_FULL=1, else ``ci``."""
    return full if FULL else ci


#: Dummy AWS credentials moto accepts while its authentication is off, and no real AWS setup.
AWS_ENV: Mapping[str, str] = ISOLATED_AWS_ENV


@dataclass
class Backend:
    """One fresh, empty shelf on one kind of storage."""

    kind: str  # "file", "s3", "azure", "gcs"
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Environment the storage SDK reads when the shelf is opened (here or in a child process).
    env: dict[str, str] = field(default_factory=dict)

    def open(self, cache: Path | str, **extra: Any) -> Any:
        """Open the shelf with ``cache`` as its download cache; ``extra`` overrides options."""
        import modelshelf

        with patched_env(self.env):
            return modelshelf.open(self.url, cache=Path(cache), **{**self.options, **extra})

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "options": self.options, "env": self.env}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Backend:
        return cls(data["kind"], data["url"], dict(data["options"]), dict(data["env"]))


#: Set the environment the storage SDK reads for the duration of a block.
patched_env = patched_environ


# --- content ---------------------------------------------------------------------------------


def write_model(
    folder: Path, rng: random.Random, *, files: int, max_size: int, tag: str
) -> dict[str, str]:
    """Write ``files`` random files (sizes 0..max_size) below ``folder``; return path -> sha256.

    ``tag`` goes into the first file, so that every model written is distinct content.
    """
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    for i in range(files):
        relative = f"part-{i}.bin" if i % 2 == 0 else f"sub/dir-{i}/weights-{i}.bin"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(0, max_size)
        data = (tag.encode() + b"\n" if i == 0 else b"") + rng.randbytes(size)
        path.write_bytes(data)
        expected[relative] = hashlib.sha256(data).hexdigest()
    return expected


def tree_digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file below ``folder``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return found


def stored_blob_keys(storage: Any) -> set[str]:
    """sha256 of every blob physically present on a shelf's storage."""
    return {info.key.rsplit("/", 1)[-1] for info in storage.list("blobs/sha256/")}


def referenced_blobs(shelf: Any) -> set[str]:
    """sha256 of every blob a live manifest references."""
    found: set[str] = set()
    for name in shelf.models():
        for version in shelf.versions(name):
            found.update(b.sha256 for b in version.blobs())
    return found


# --- misc ------------------------------------------------------------------------------------


def azure_connection_string(connection_string: str, blob_endpoint: str) -> str:
    """The same development account, reached at ``blob_endpoint`` (e.g. through a proxy)."""
    parts = [p for p in connection_string.split(";") if p and not p.startswith("BlobEndpoint=")]
    return ";".join([*parts, f"BlobEndpoint={blob_endpoint}/devstoreaccount1"]) + ";"


def blob_port(connection_string: str) -> int:
    endpoint = next(p for p in connection_string.split(";") if p.startswith("BlobEndpoint="))
    return int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])


def one_line_error(exc: BaseException) -> None:
    """Assert ``exc`` is a modelshelf error with a one-line message free of known secrets."""
    from modelshelf.errors import ModelshelfError

    assert isinstance(exc, ModelshelfError), f"raw {type(exc).__name__}: {exc!r}"
    text = str(exc)
    assert text and "\n" not in text, f"not one line: {text!r}"
    from modelshelf_azure.testing import DEV_KEY

    for secret in (DEV_KEY, "AccountKey=", "sig=", "testing:"):
        assert secret not in text, f"secret-looking text in error: {text!r}"


# --- fresh shelves on the servers ------------------------------------------------------------


def new_s3_backend(endpoint: str, **options: Any) -> Backend:
    from modelshelf_s3.testing import create_bucket

    bucket = create_bucket(endpoint, "rel")
    return Backend(
        "s3", f"s3://{bucket}/shelf", {"endpoint_url": endpoint, **options}, dict(AWS_ENV)
    )


def new_azure_backend(connection_string: str, **options: Any) -> Backend:
    from modelshelf_azure.testing import create_container

    container = create_container(connection_string, "rel")
    return Backend(
        "azure", f"az://{container}/shelf", {"connection_string": connection_string, **options}
    )


def new_gcs_backend(host: str, **options: Any) -> Backend:
    from modelshelf_gcs.testing import create_bucket

    bucket = f"rel-{secrets.token_hex(6)}"
    create_bucket(host, bucket, project="modelshelf-rel")
    env = {"STORAGE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": "modelshelf-rel"}
    return Backend("gcs", f"gs://{bucket}/shelf", dict(options), env)
