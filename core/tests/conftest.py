from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelshelf.default_plugins.filesystem import FileSystemStorage
from modelshelf.shelf import Shelf

HERE = Path(__file__).parent


class CountingStorage(FileSystemStorage):
    """A real filesystem storage that records every call, to prove what did (not) reach storage."""

    def __init__(self, url: str) -> None:
        super().__init__(url, fsync=False)
        self.calls: list[tuple[str, str]] = []

    def _record(self, method: str, key: str) -> None:
        self.calls.append((method, key))

    def read(self, key):  # type: ignore[no-untyped-def]
        self._record("read", key)
        return super().read(key)

    def read_stream(self, key, chunk_size=1 << 20):  # type: ignore[no-untyped-def]
        self._record("read_stream", key)
        return super().read_stream(key, chunk_size)

    def local_path(self, key):  # type: ignore[no-untyped-def]
        self._record("local_path", key)  # a read too: the kernel copies from the file it names
        return super().local_path(key)

    def stat(self, key):  # type: ignore[no-untyped-def]
        self._record("stat", key)
        return super().stat(key)

    def list(self, prefix):  # type: ignore[no-untyped-def]
        self._record("list", prefix)
        return super().list(prefix)

    def list_prefixes(self, prefix):  # type: ignore[no-untyped-def]
        self._record("list_prefixes", prefix)
        return super().list_prefixes(prefix)

    def put_file(self, key, path):  # type: ignore[no-untyped-def]
        self._record("put_file", key)
        return super().put_file(key, path)

    def put_if_absent(self, key, data):  # type: ignore[no-untyped-def]
        self._record("put_if_absent", key)
        return super().put_if_absent(key, data)

    def put_if_match(self, key, data, etag):  # type: ignore[no-untyped-def]
        self._record("put_if_match", key)
        return super().put_if_match(key, data, etag)

    def delete(self, key):  # type: ignore[no-untyped-def]
        self._record("delete", key)
        return super().delete(key)


@pytest.fixture
def counting_shelf(tmp_path: Path, modelshelf_cache: Path) -> Iterator[Shelf]:
    from modelshelf.cache import Cache

    shelf = Shelf(CountingStorage(str(tmp_path / "shelf")), cache=Cache(modelshelf_cache))
    yield shelf


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(4096))
    return path


@pytest.fixture
def run_cli():  # type: ignore[no-untyped-def]
    """Run ``python -m modelshelf ARGS`` in a subprocess, as a user would."""
    import subprocess

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):  # type: ignore[no-untyped-def]
        return subprocess.run(
            [sys.executable, "-m", "modelshelf", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
            timeout=120,
        )

    return run
