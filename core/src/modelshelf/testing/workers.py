"""Functions run in child processes by the concurrency tests (importable, so ``spawn`` works)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def upload_many(
    url: str, options: dict[str, Any], name: str, count: int, worker: int, scratch: str
) -> list[int]:
    """Upload ``count`` small distinct files to ``name``; return the version numbers obtained."""
    import modelshelf

    shelf = modelshelf.open(url, **options)
    got = []
    for i in range(count):
        path = Path(scratch) / f"w{worker}-{i}.txt"
        path.write_text(f"worker {worker} upload {i} pid {os.getpid()}\n")
        version = shelf.upload(name, path, metadata={"worker": worker, "i": i})
        got.append(version.version)
    shelf.close()
    return got


def move_alias(
    url: str, options: dict[str, Any], name: str, alias: str, versions: list[int]
) -> int:
    """Point ``alias`` at each of ``versions`` in turn; return how many moves were made."""
    import modelshelf

    shelf = modelshelf.open(url, **options)
    for version in versions:
        shelf.set_alias(name, alias, version)
    shelf.close()
    return len(versions)
