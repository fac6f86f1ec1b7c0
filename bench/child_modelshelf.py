"""One modelshelf operation in a fresh process, timed; prints its result as JSON.

    python bench/child_modelshelf.py upload '{"url": "...", "name": "m", "path": "..."}'

Run by ``bench/run.py`` with the current interpreter (modelshelf, modelshelf-s3 installed).
``MODELSHELF_CACHE`` is set by the parent (a fresh directory where a cold cache is intended).
The timed block is the public API call only; interpreter start-up and imports are reported
separately (workload 6) so they do not blur transfer numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _childlib import RequestCounter, main, measured


def _open(args: dict[str, Any]) -> tuple[Any, RequestCounter | None, dict[str, Any]]:
    counter = None
    if args["url"].startswith("s3://"):
        counter = RequestCounter()
        counter.install()
    result: dict[str, Any] = {}
    started = time.perf_counter()
    import modelshelf

    shelf = modelshelf.open(args["url"])
    result["open_seconds"] = time.perf_counter() - started
    return shelf, counter, result


def upload(args: dict[str, Any]) -> dict[str, Any]:
    shelf, counter, result = _open(args)
    with measured(result, counter):
        version = shelf.upload(args["name"], args["path"])
    result["version"] = version.version
    return result


def download(args: dict[str, Any]) -> dict[str, Any]:
    shelf, counter, result = _open(args)
    with measured(result, counter):
        shelf.download(args["ref"], args["dest"], keep_cache=args.get("keep_cache", False))
    return result


def copy(args: dict[str, Any]) -> dict[str, Any]:
    """Copy one version to another shelf (``to``), opened outside the timed block too."""
    shelf, counter, result = _open(args)
    import modelshelf
    from modelshelf.copying import copy as copy_versions

    target = modelshelf.open(args["to"])
    with measured(result, counter):
        report = copy_versions(shelf, target, args["ref"])
    result["bytes_sent"] = report.bytes_sent
    return result


def load(args: dict[str, Any]) -> dict[str, Any]:
    shelf, counter, result = _open(args)
    with measured(result, counter):
        loaded = shelf.load(args["ref"])
    result["loaded"] = str(loaded)
    return result


def versions(args: dict[str, Any]) -> dict[str, Any]:
    shelf, counter, result = _open(args)
    with measured(result, counter):
        found = shelf.versions(args["name"])
    result["count"] = len(found)
    return result


def list_numbers(args: dict[str, Any]) -> dict[str, Any]:
    """``list_versions``: numbers and dates from the listing alone, like modelstore's ids."""
    shelf, counter, result = _open(args)
    with measured(result, counter):
        found = shelf.list_versions(args["name"])
    result["count"] = len(found)
    return result


def populate(args: dict[str, Any]) -> dict[str, Any]:
    """Upload ``count`` versions of a small, changing file (setup for the listing workload)."""
    shelf, counter, result = _open(args)
    work = Path(args["scratch"])
    work.mkdir(parents=True, exist_ok=True)
    with measured(result, counter):
        for number in range(args["count"]):
            file = work / "config.json"
            file.write_text(f'{{"version": {number}, "pad": "{"x" * 200}"}}\n')
            shelf.upload(args["name"], file)
    return result


if __name__ == "__main__":
    main(
        {
            "upload": upload,
            "download": download,
            "copy": copy,
            "load": load,
            "versions": versions,
            "list_numbers": list_numbers,
            "populate": populate,
        }
    )
