"""The modelshelf demo: train a small model, upload it, list, alias, load it back.

Runs on a local shelf (``demo/shelf`` beside this file, or ``MODELSHELF_URL`` if set), with no
server and no network. Run it with ``./dev demo``; run it again to see version numbers grow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import modelshelf
import numpy as np
from sklearn.datasets import load_iris  # bundled with scikit-learn: nothing is downloaded
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).parent


def main() -> int:
    url = os.environ.get("MODELSHELF_URL") or str(HERE / "shelf")
    shelf = modelshelf.open(url)
    print(f"Shelf: {shelf.url}\n")

    # 1. Train a small model.
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))
    model.fit(X, y)
    accuracy = float(model.score(X, y))
    print(f"Trained {type(model).__name__} (accuracy {accuracy:.3f})")

    # 2. Upload it: saved with skops (a safe format), hashed, stored once, numbered max+1.
    version = shelf.upload(
        "demo/iris",
        model,
        metrics={"accuracy": accuracy},
        params={"C": 1.0, "max_iter": 500},
        tags={"dataset": "iris"},
        description="Logistic regression on the iris data set",
    )
    print(
        f"Uploaded {version.ref}: {len(version.files)} file(s), {version.total_size} bytes, "
        f"serializer {version.serializer.name}, framework {version.framework.name} {version.framework.version}"
    )

    # 3. List what the shelf holds.
    print("\nVersions of demo/iris:")
    for v in shelf.versions("demo/iris"):
        print(
            f"  {v.ref:<14} {v.created_at:%Y-%m-%d %H:%M:%S}  accuracy={v.metrics['accuracy']:.3f}"
        )

    # 4. Promote it: point the "prod" alias at the new version (compare-and-swap, logged).
    alias = shelf.set_alias("demo/iris", "prod", version.version)
    moved = f" (was {alias.previous})" if alias.previous is not None else ""
    print(f"\ndemo/iris@prod -> {alias.version}{moved}")

    # 5. Load it back through the alias, verified against its sha256, and check it predicts the same.
    loaded = shelf.load("demo/iris@prod")
    same = bool(np.array_equal(loaded.predict(X), model.predict(X)))
    print(f"Loaded demo/iris@prod: {type(loaded).__name__}, identical predictions: {same}")

    print("\nHistory:")
    for event in shelf.history("demo/iris")[-4:]:
        target = f"@{event.alias} -> {event.version}" if event.alias else f"version {event.version}"
        print(f"  {event.at:%H:%M:%S} {event.action:<10} {target}")

    print(
        f"\nTry the command line on the same shelf:\n  modelshelf --shelf {url} ls demo/iris\n"
        f"  modelshelf --shelf {url} info demo/iris@prod\n  modelshelf --shelf {url} history demo/iris"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
