"""Fixtures for the UI tests: one shelf built by the tests, served and built as a static site,
and a headless Chromium driven by Playwright.

The browser is the machine's own Chromium (Debian's ``chromium``, installed by ``./dev setup
test``); Playwright never downloads one. Without it the browser tests skip locally with the
reason, and fail in CI (``CI`` set), where skipping would hide that nothing was tested.
Screenshots go to ``test-artifacts/ui/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import shelf_maker

ROOT = Path(__file__).resolve().parents[3]
#: Where the browser tests save their screenshots (named in the README).
ARTIFACTS = ROOT / "test-artifacts" / "ui"
#: Keeps Chromium from reaching out on its own (updates, sync, metrics): the tests must see only
#: the page's own requests, and the machine has no network beyond the package registries.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--no-default-browser-check",
]
#: The big model's versions: more than two pages of the versions table (50 rows a page).
BIG_VERSIONS = 120


def chromium_path() -> str | None:
    candidates = [
        os.environ.get("MODELSHELF_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def ui_shelf(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("ui")
    os.environ.setdefault("MODELSHELF_FSYNC", "0")
    return shelf_maker.make_shelf(
        base / "shelf", base / "work", cache=base / "cache", big=BIG_VERSIONS
    )


@pytest.fixture(scope="session")
def ui_server(ui_shelf: Any) -> Iterator[Any]:
    from modelshelf_ui.data import ShelfView
    from modelshelf_ui.server import UIServer

    server = UIServer(ShelfView(ui_shelf), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="session")
def static_site(ui_shelf: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelshelf_ui.data import ShelfView
    from modelshelf_ui.static_site import build_site

    directory = tmp_path_factory.mktemp("site") / "site"
    build_site(ShelfView(ui_shelf), directory)
    return directory


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = None
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = (
            "playwright is not installed: `pip install playwright` (./dev setup test installs it)"
        )
    if reason is None and executable is None:
        reason = (
            "Chromium is not installed: `apt-get install chromium` (./dev setup test installs it)"
        )
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page, with every request it made and every dialog it tried to open."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> Any:
        """Go to ``url`` and wait until the page has rendered its view."""
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready]")
        return self.page

    def route(self, hash_route: str) -> Any:
        """Follow an in-page route (``#/model/churn``) and wait for it to render."""
        self.page.evaluate("document.body.removeAttribute('data-ready')")
        self.page.evaluate("h => { location.hash = h; }", hash_route)
        self.page.wait_for_selector("body[data-ready]")
        return self.page

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A fresh browser context whose requests to any other origin are blocked and recorded."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    foreign: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "file://")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    result = Watched(page)
    result.blocked = foreign  # type: ignore[attr-defined]
    try:
        yield result
    finally:
        context.close()
