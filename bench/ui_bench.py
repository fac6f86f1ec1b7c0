"""How long the web view's model page takes for a model of 1,000 versions, local and on S3 (moto).

    python bench/ui_bench.py                    # 1,000 versions, local and s3, 3 repetitions
    python bench/ui_bench.py --versions 200 --only local --repeat 1

For each backend it publishes N versions of one small model (metrics, params, tags, an alias
every 100 versions), then times, as medians of ``--repeat`` runs:

- ``cold``: a freshly started ``modelshelf ui``: a new Shelf, an empty record cache, a new view;
  the model document (every manifest, the aliases and the whole history read).
- ``restart``: a new Shelf and view on the record cache the cold run filled (``modelshelf ui``
  started again on the same machine): object storage answers from the cache by etag.
- ``reload``: the same view asked again (the page reloaded in a running server): one listing,
  then only manifests it has not seen.
- ``page``: the model page in headless Chromium on a running server, from navigation to the
  table and chart drawn (only with Chromium and Playwright installed).

Figures go to docs/ui.md and docs/benchmarks.md by hand; this script prints them as a table.
The machine is 2 shared cores: quote the medians, and the load average printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "ui" / "tests"))

import shelf_maker  # noqa: E402 - found through the path set just above

os.environ.setdefault("MODELSHELF_FSYNC", "0")  # building the shelf is not what is measured
NAME = "bench/churn"


def _median(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _browser_page_time(server_url: str, repeat: int) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        return None
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            url = server_url + "#/model/" + NAME.replace("/", "%2F")

            def load() -> None:
                page.goto("about:blank")
                page.goto(url)
                page.wait_for_selector("body[data-ready='model'] #chart circle.point")

            load()  # the browser's own start-up is not the page's time
            return _median(load, repeat)
        finally:
            browser.close()


def measure(
    url: str, work: Path, versions: int, repeat: int, options: dict[str, Any]
) -> dict[str, float | None]:
    import modelshelf
    from modelshelf_ui.data import ShelfView
    from modelshelf_ui.server import UIServer

    shelf = modelshelf.open(url, cache=work / "cache-fill", **options)
    start = time.perf_counter()
    shelf_maker.fill_versions(shelf, NAME, versions, work)
    filled = time.perf_counter() - start

    caches = iter(range(10_000))

    def cold() -> None:
        fresh = modelshelf.open(url, cache=work / f"cache-cold-{next(caches)}", **options)
        document = ShelfView(fresh).model_document(NAME)
        assert len(document["versions"]) == versions

    cache = work / "cache-restart"
    ShelfView(modelshelf.open(url, cache=cache, **options)).model_document(NAME)

    def restart() -> None:
        ShelfView(modelshelf.open(url, cache=cache, **options)).model_document(NAME)

    view = ShelfView(modelshelf.open(url, cache=cache, **options))
    view.model_document(NAME)
    server = UIServer(view, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = {
            "fill": filled,
            "cold": _median(cold, repeat),
            "restart": _median(restart, repeat),
            "reload": _median(lambda: view.model_document(NAME), repeat),
            "page": _browser_page_time(server.url, repeat),
        }
    finally:
        server.shutdown()
        server.server_close()
    return result


@contextlib.contextmanager
def backend(kind: str, work: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if kind == "local":
        yield str(work / "shelf"), {}
        return
    import boto3
    from modelshelf_s3.testing import moto_environment

    with moto_environment() as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="ui-bench")
        yield "s3://ui-bench/models", {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["local", "s3"], action="append")
    args = parser.parse_args()
    rows = []
    for kind in args.only or ["local", "s3"]:
        with tempfile.TemporaryDirectory(prefix=f"ui-bench-{kind}-") as directory:
            work = Path(directory)
            with backend(kind, work) as (url, options):
                figures = measure(url, work, args.versions, args.repeat, options)
        rows.append((kind, figures))
        print(f"{kind}: {figures}", file=sys.stderr, flush=True)

    def shown(value: float | None) -> str:
        return "n/a (no Chromium)" if value is None else f"{value:.2f} s"

    print(
        f"\nmodel page of {args.versions} versions, medians of {args.repeat}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n"
    )
    print(
        "| backend | publish N versions | cold start | restart (record cache) | reload (running server) | page in Chromium |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, f in rows:
        print(
            f"| {kind} | {shown(f['fill'])} | {shown(f['cold'])} | {shown(f['restart'])} | {shown(f['reload'])} | {shown(f['page'])} |"
        )


if __name__ == "__main__":
    main()
