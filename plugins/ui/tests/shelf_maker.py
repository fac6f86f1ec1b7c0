"""Shelves for the UI tests and the benchmark: known content, known answers.

No pytest here: ``bench/ui_bench.py`` builds its shelves with :func:`fill_versions` too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: What the hostile model stores: each would run script or reach another origin if rendered as
#: markup or followed as a link. The page sets nothing and requests nothing when they stay text.
SCRIPT = "<script>window.__pwned = 'script'; fetch('http://127.0.0.2:9/script')</script>"
IMG = "\"><img src=x onerror=\"window.__pwned='img'; fetch('http://127.0.0.2:9/img')\">"
JS_URL = "javascript:window.__pwned='url';fetch('http://127.0.0.2:9/url')"
REMOTE = (
    '<img src="http://127.0.0.2:9/remote.png"><link rel=stylesheet href="http://127.0.0.2:9/x.css">'
)
HOSTILE_FILES = (
    "<script>alert(1)</script>.bin",
    '"><img src=x onerror=alert(2)>.txt',
    "javascript:alert(3)",
)

#: churn: (version -> metrics); v5 is deleted; prod moved v3 -> v7; staging on v10.
CHURN_VERSIONS = 12
CHURN_DELETED = 5


def churn_metrics(version: int) -> dict[str, float]:
    return {
        "auc": round(0.70 + version * 0.02, 4),
        "f1": round(0.5 + (version % 4) * 0.05, 4),
        "loss": round(1.0 / version, 4),
    }


def _files(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name  # "<script>...</script>.bin" is a file in a folder "<script>...<"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def _sklearn_model() -> Any:
    """A fitted scikit-learn model (framework, signature and a skops file on its version page)."""
    from sklearn.linear_model import LogisticRegression

    features = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]]
    return LogisticRegression().fit(features, [0, 1, 0, 1])


def make_shelf(root: Path, work: Path, cache: Path | None = None, big: int = 0) -> Any:
    """A local shelf with ``churn`` (12 versions, aliases moved, v5 deleted), ``team/fraud``
    (3 versions, the last a scikit-learn model), ``hostile`` (markup and script everywhere a user
    can put text) and, with ``big``, a model ``big`` of that many versions (for paging)."""
    import modelshelf

    shelf = modelshelf.open(str(root), cache=cache)
    weights = os.urandom(4096)  # the same weights in v1-v4: stored once, shown as shared
    for version in range(1, CHURN_VERSIONS + 1):
        model_dir = _files(
            work / f"churn{version}",
            {
                "weights.bin": weights if version <= 4 else os.urandom(2048 + version),
                "config.json": f'{{"version": {version}}}'.encode(),
            },
        )
        shelf.upload(
            "churn",
            model_dir,
            metrics=churn_metrics(version),
            params={"C": version / 10, "penalty": "l2" if version % 2 else "l1"},
            tags={"data": f"2026-{version:02d}"},
            metadata={"owner": "ana"},
            description=f"weekly retrain {version}",
        )
        if version == 3:
            shelf.set_alias("churn", "prod", 3)
        if version == 7:
            shelf.set_alias("churn", "prod", 7)
        if version == 8:
            shelf.set_alias("churn", "canary", 8)
    shelf.set_alias("churn", "staging", 10)
    shelf.remove_alias("churn", "canary")
    shelf.delete(f"churn:{CHURN_DELETED}")
    for version in range(1, 3):
        shelf.upload(
            "team/fraud",
            _files(work / f"fraud{version}", {"model.onnx": os.urandom(1000 * version)}),
            metrics={"precision": 0.8 + version / 100},
            tags={"team": "risk"},
            description="fraud detector",
        )
    shelf.upload(
        "team/fraud",
        _sklearn_model(),
        metrics={"precision": 0.83},
        tags={"team": "risk"},
        description="fraud detector, scikit-learn",
    )
    hostile_dir = _files(work / "hostile", {name: name.encode() for name in HOSTILE_FILES})
    shelf.upload(
        "hostile",
        hostile_dir,
        metrics={SCRIPT: 1.0, "auc": 0.5},
        params={IMG: JS_URL},
        tags={"link": JS_URL, IMG: SCRIPT},
        metadata={"homepage": JS_URL, "html": REMOTE, SCRIPT: {"nested": IMG}},
        description=f"{SCRIPT}\n{IMG}\n{JS_URL}\n{REMOTE}",
    )
    shelf.upload("hostile", hostile_dir, description=SCRIPT, tags={"x": IMG})
    shelf.set_alias("hostile", "prod", 2)
    if big:
        fill_versions(shelf, "big", big, work)
    return shelf


def fill_versions(shelf: Any, name: str, count: int, work: Path) -> None:
    """``count`` versions of one small model with changing metrics (the benchmark's model)."""
    model = _files(work / "bench-model", {"weights.bin": os.urandom(1024), "config.json": b"{}"})
    for version in range(1, count + 1):
        shelf.upload(
            name,
            model,
            metrics={
                "auc": 0.5 + (version % 100) / 250,
                "loss": 1 / version,
                "f1": (version % 7) / 7,
            },
            params={"seed": version},
            tags={"run": str(version)},
            description=f"run {version}",
        )
        if version % 100 == 0:
            shelf.set_alias(name, "prod", version)
