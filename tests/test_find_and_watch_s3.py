"""``find``, model cards and ``watch`` on S3 (moto): the record cache and the etag polling on an
object store, with the alias moved through another Shelf (another client)."""

from __future__ import annotations

from pathlib import Path

import modelshelf
from modelshelf.watching import Watcher


def test_find_card_and_watch_on_s3(tmp_path: Path, s3_url: str, moto_endpoint: str) -> None:
    shelf = modelshelf.open(s3_url, endpoint_url=moto_endpoint, cache=tmp_path / "cache")
    model = tmp_path / "model.txt"
    model.write_text("weights")
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n# Churn\n\nA model.\n")
    for number, auc in enumerate([0.7, 0.95, 0.9, 0.8], start=1):
        shelf.upload(
            "churn",
            model,
            metrics={"auc": auc},
            tags={"data": "2026-11" if number % 2 else "2026-10"},
            card=card if number == 3 else None,
        )
    shelf.set_alias("churn", "prod", 1)

    query = "metrics.auc >= 0.75 and tags.data == '2026-11'"
    assert [v.version for v in shelf.find("churn", query, order_by="-metrics.auc")] == [3]
    assert [v.version for v in shelf.find("churn", order_by="-metrics.auc", limit=2)] == [2, 3]

    # A second client with its own cache sees the same answers, and the card.
    other = modelshelf.open(s3_url, endpoint_url=moto_endpoint, cache=tmp_path / "cache-other")
    assert [v.version for v in other.find("churn", "aliases contains 'prod'")] == [1]
    card_read = other.card("churn:3")
    assert (
        card_read is not None
        and card_read.front_matter == {"license": "mit"}
        and card_read.summary == "A model."
    )
    assert other.card("churn:2") is None

    watcher = Watcher(shelf, "churn@prod")
    assert watcher.current().version == 1  # type: ignore[union-attr]
    other.set_alias("churn", "prod", 3)
    assert watcher.current().version == 3  # type: ignore[union-attr]
    other.upload("churn", model, metrics={"auc": 0.99}, tags={"data": "2026-11"})
    assert [v.version for v in shelf.find("churn", query, order_by="-metrics.auc")] == [5, 3]
