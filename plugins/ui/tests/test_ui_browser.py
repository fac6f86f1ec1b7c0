"""The pages in a real browser (headless Chromium through Playwright): every page of the test
shelf, served and built as a static site, with screenshots in ``test-artifacts/ui/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import shelf_maker


def _rows(page: Any, table: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => r.dataset.key || r.innerText)"
    )


def _column(page: Any, table: str, column: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody td[data-column='{column}']", "cells => cells.map(c => c.innerText.trim())"
    )


def test_shelf_page_lists_models_and_filters(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url)
    assert _rows(page, "models") == ["big", "churn", "hostile", "team/fraud"]
    assert page.eval_on_selector_all(
        "#models tr[data-key='churn'] .badge", "b => b.map(x => x.textContent)"
    ) == ["@prod", "@staging"]
    assert _column(page, "models", "latest") == ["v120", "v12", "v2", "v3"]
    assert "sklearn" in page.inner_text(
        "#models tr[data-key='team/fraud'] td[data-column='framework']"
    )
    watched.screenshot("shelf")
    page.fill("#filter", "fraud")
    assert _rows(page, "models") == ["team/fraud"]
    page.fill("#filter", "@staging")
    assert _rows(page, "models") == ["churn"]
    page.fill("#filter", "")
    page.click("#models th button[data-key='versions']")  # most versions first
    assert _rows(page, "models") == ["big", "churn", "team/fraud", "hostile"]
    assert not watched.errors


def test_model_page_table_chart_and_timeline(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url + "#/model/churn")
    assert page.inner_text("#model-name") == "churn"
    # Newest first; the deleted version keeps its place, shown as deleted.
    assert _rows(page, "versions") == [str(n) for n in range(12, 0, -1)]
    deleted = page.locator(f"#versions tr[data-key='{shelf_maker.CHURN_DELETED}']")
    assert "deleted" in (deleted.get_attribute("class") or "") and "deleted" in deleted.inner_text()
    assert _column(page, "versions", "metric:auc")[0] == str(shelf_maker.churn_metrics(12)["auc"])

    live = [n for n in range(1, 13) if n != shelf_maker.CHURN_DELETED]
    points = page.eval_on_selector_all(
        "#chart circle.point",
        "ps => ps.map(p => [+p.dataset.version, +p.dataset.value, +p.getAttribute('cy')])",
    )
    assert [(v, value) for v, value, _ in points] == [
        (n, shelf_maker.churn_metrics(n)["auc"]) for n in live
    ]
    heights = [cy for _, _, cy in points]
    assert heights == sorted(heights, reverse=True)  # auc grows with the version: drawn higher
    markers = page.eval_on_selector_all(
        "#chart .alias-marker", "ms => ms.map(m => [m.dataset.alias, +m.dataset.version])"
    )
    assert sorted(markers) == [["prod", 7], ["staging", 10]]
    watched.screenshot("model")

    page.select_option("#metric-select", "loss")
    values = page.eval_on_selector_all("#chart circle.point", "ps => ps.map(p => +p.dataset.value)")
    assert values == [shelf_maker.churn_metrics(n)["loss"] for n in live]
    assert page.get_attribute("#chart", "data-metric") == "loss"

    page.click("#versions th button[data-key='metric:loss']")  # highest loss first
    assert _rows(page, "versions")[:3] == ["1", "2", "3"]
    assert _rows(page, "versions")[-1] == str(shelf_maker.CHURN_DELETED)  # no value: last
    page.click("#versions th button[data-key='metric:loss']")
    assert _rows(page, "versions")[0] == "12"

    page.uncheck("#metric-columns input[value='f1']")
    assert page.locator("#versions th button[data-key='metric:f1']").count() == 0

    changes = _column(page, "timeline", "change")
    assert changes == [
        "removed (was v8)",
        "set to v10",
        "set to v8",
        "moved from v3 to v7",
        "set to v3",
    ]
    assert not watched.errors


def test_model_page_pages_through_many_versions(ui_server: Any, watched: Any) -> None:
    from conftest import BIG_VERSIONS

    page = watched.open(ui_server.url + "#/model/big")
    assert _rows(page, "versions") == [str(n) for n in range(BIG_VERSIONS, BIG_VERSIONS - 50, -1)]
    assert "page 1 of 3" in page.inner_text("#versions-section .page-info")
    page.click("#versions-section .pager .next")
    assert _rows(page, "versions")[0] == str(BIG_VERSIONS - 50)
    page.click("#versions-section .pager .next")
    assert len(_rows(page, "versions")) == BIG_VERSIONS - 100
    assert page.is_disabled("#versions-section .pager .next")
    assert page.locator("#chart circle.point").count() == BIG_VERSIONS


def test_version_page(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url + "#/version/churn/2")
    assert page.inner_text("#description") == "weekly retrain 2"
    assert "Safe format" in page.inner_text("#safety")
    metrics = page.eval_on_selector_all(
        "#metrics tr", "rows => rows.map(r => [r.dataset.key, r.querySelector('td').innerText])"
    )
    assert metrics == [[k, str(v)] for k, v in sorted(shelf_maker.churn_metrics(2).items())]
    assert page.inner_text("#tags tr[data-key='data'] td") == "2026-02"
    assert "stored once, also in v1, v3, v4" in page.inner_text("#files tr[data-key='weights.bin']")
    assert "only this version" in page.inner_text("#files tr[data-key='config.json']")
    sha = page.inner_text("#files tr[data-key='weights.bin'] .sha")
    assert len(sha) == 64
    assert 'shelf.load("churn:2")' in page.inner_text("#python-snippet")
    assert page.inner_text("#cli-snippet").startswith("modelshelf --shelf ")
    assert "download churn:2 ./churn-v2" in page.inner_text("#cli-snippet")
    watched.screenshot("version")

    page = watched.route("#/version/team%2Ffraud/3")
    assert "sklearn" in page.inner_text("#overview")
    assert page.locator("#signature table").count() == 2  # inputs and outputs
    assert not watched.errors


def test_compare_with_differences_only(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url + "#/model/churn")
    for version in (2, 3, 7):
        page.check(f"#versions input.pick[data-version='{version}']")
    page.click("#compare")
    page.wait_for_selector("#compare-table")
    assert page.eval_on_selector_all(
        "#compare-table thead th[data-version]", "h => h.map(x => +x.dataset.version)"
    ) == [2, 3, 7]
    row = page.locator("#compare-table tr[data-field='Metrics:auc'] td")
    assert row.all_inner_texts() == [str(shelf_maker.churn_metrics(n)["auc"]) for n in (2, 3, 7)]
    assert page.is_visible("#compare-table tr[data-field='Metadata:owner']")
    watched.screenshot("compare")
    page.check("#diff-only")
    assert not page.is_visible("#compare-table tr[data-field='Metadata:owner']")  # same everywhere
    assert page.is_visible("#compare-table tr[data-field='Metrics:auc']")
    visible = page.eval_on_selector_all(
        "#compare-table tbody tr",
        "rows => rows.filter(r => r.offsetParent !== null).map(r => r.dataset.field)",
    )
    assert "Files:weights.bin" in visible  # v7 has new weights
    assert all(f not in visible for f in ("Version:by", "Version:safe format", "Metadata:owner"))
    watched.screenshot("compare-differences")
    assert not watched.errors


HOSTILE_ROUTES = [
    "#/",
    "#/model/hostile",
    "#/version/hostile/1",
    "#/version/hostile/2",
    "#/compare/hostile/1,2",
]


def _assert_inert(watched: Any, origin: str) -> None:
    page = watched.page
    assert page.evaluate("window.__pwned") is None, "a payload ran"
    assert watched.dialogs == [], "a payload opened a dialog"
    foreign = [url for url in watched.requests if not url.startswith(origin)]
    assert foreign == [] and watched.blocked == [], (
        f"requests elsewhere: {foreign or watched.blocked}"
    )
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("#/") for h in hrefs), hrefs
    assert page.locator("main script, main img, main iframe, main link, main object").count() == 0


def test_hostile_metadata_stays_text(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url + "#/version/hostile/1")
    description = page.inner_text("#description")
    for payload in (shelf_maker.SCRIPT, shelf_maker.IMG, shelf_maker.JS_URL, shelf_maker.REMOTE):
        assert payload in description  # shown as the text it is
    paths = page.eval_on_selector_all("#files .path", "cells => cells.map(c => c.textContent)")
    assert sorted(paths) == sorted(shelf_maker.HOSTILE_FILES)
    assert page.inner_text("#metadata tr[data-key='homepage'] td") == shelf_maker.JS_URL
    assert shelf_maker.IMG in page.inner_text("#tags")
    watched.screenshot("hostile-version")
    for hash_route in HOSTILE_ROUTES:
        watched.route(hash_route)
        page.hover("main")  # onmouseover payloads would fire here
        _assert_inert(watched, ui_server.url)
    assert not watched.errors


def test_hostile_metadata_stays_text_in_the_static_site(static_site: Path, watched: Any) -> None:
    origin = (static_site / "index.html").as_uri()
    watched.open(origin + "#/version/hostile/1")
    for hash_route in HOSTILE_ROUTES:
        watched.route(hash_route)
        _assert_inert(watched, static_site.as_uri() + "/")


@pytest.mark.parametrize(
    "hash_route",
    [
        "#/",
        "#/model/churn",
        "#/model/big",
        "#/version/churn/2",
        "#/version/team%2Ffraud/3",
        "#/version/hostile/1",
        "#/compare/churn/2,3,7",
    ],
)
def test_static_site_from_disk_shows_what_the_server_shows(
    ui_server: Any, static_site: Path, watched: Any, hash_route: str
) -> None:
    served = watched.open(ui_server.url + hash_route).inner_text("main")
    from_disk_page = watched.open((static_site / "index.html").as_uri() + hash_route)
    assert from_disk_page.evaluate("location.protocol") == "file:"
    from_disk = from_disk_page.inner_text("main")
    assert from_disk == served
    assert "Could not show" not in from_disk
    if hash_route == "#/model/churn":
        watched.screenshot("model-static")
    assert not watched.errors


def test_a_broken_link_shows_an_error_not_a_blank_page(ui_server: Any, watched: Any) -> None:
    page = watched.open(ui_server.url + "#/model/..%2F..%2Fetc")
    assert "not a model name" in page.inner_text("main .error")
    page = watched.route("#/version/churn/5")
    assert "no live version 5" in page.inner_text("main .error")
