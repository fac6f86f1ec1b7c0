"""Screenshot pages of the built documentation site with headless Chromium (CI artifacts).

    python scripts/screenshot_docs.py [SITE_DIR] [OUT_DIR]     # defaults: build/site test-artifacts/docs

Serves SITE_DIR on a free local port and saves one PNG per page in PAGES. Uses Playwright driving
the system Chromium (``chromium`` on PATH, or ``MODELSHELF_CHROMIUM``), and falls back to
Chromium's own ``--screenshot`` when Playwright is not installed. Fails when no Chromium is found
or a page is missing: the screenshots are part of what CI must produce.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: site path -> file name: the home page and one generated plugin page.
PAGES = {
    "": "docs-home.png",
    "plugins/sklearn/": "docs-plugin-sklearn.png",
    "reference/cli/": "docs-cli.png",
}
SIZE = (1280, 900)


def _chromium() -> str:
    found = os.environ.get("MODELSHELF_CHROMIUM") or next(
        (
            shutil.which(name)
            for name in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(name)
        ),
        None,
    )
    if not found:
        sys.exit(
            "screenshot_docs: no Chromium found (install Debian's chromium, or set MODELSHELF_CHROMIUM)"
        )
    return found


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _with_playwright(chromium: str, base: str, out: Path) -> bool:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
            for path, name in PAGES.items():
                response = page.goto(base + path, wait_until="networkidle")
                if response is None or response.status != 200:
                    sys.exit(
                        f"screenshot_docs: {base + path} answered {response and response.status}"
                    )
                page.screenshot(path=str(out / name))
        finally:
            browser.close()
    return True


def _with_chromium_cli(chromium: str, base: str, out: Path) -> None:
    for path, name in PAGES.items():
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={SIZE[0]},{SIZE[1]}",
                f"--screenshot={out / name}",
                base + path,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "test-artifacts" / "docs"
    missing = [path for path in PAGES if not (site / path / "index.html").is_file()]
    if missing:
        sys.exit(
            f"screenshot_docs: {site} has no page {missing}: build the site first (mkdocs build)"
        )
    out.mkdir(parents=True, exist_ok=True)
    chromium = _chromium()
    server, base = _serve(site)
    try:
        if not _with_playwright(chromium, base, out):
            _with_chromium_cli(chromium, base, out)
    finally:
        server.shutdown()
    for name in PAGES.values():
        shot = out / name
        if not shot.is_file() or shot.stat().st_size < 10_000:
            sys.exit(f"screenshot_docs: {shot} was not written (or is blank)")
        print(f"screenshot: {shot}")


if __name__ == "__main__":
    main()
