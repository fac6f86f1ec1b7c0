"""How long ``shelf.find`` / ``modelshelf ls NAME --where`` take for a model of 10,000 versions on a
local shelf.

    python bench/find_bench.py                  # 10,000 versions, 5 repetitions
    python bench/find_bench.py --versions 2000 --repeat 3

One version is uploaded normally; the other N-1 manifests are written with the same create-only
write an upload ends with (``put_if_absent`` of the manifest key; same format, same bytes an
upload would produce, only the blob is shared), each with its own metrics, params, tags and
time: publishing 10,000 real uploads would take many minutes and measure uploads, not queries.
Then, every measurement in a fresh process (medians of ``--repeat``):

- ``versions()``: every manifest read and validated (the path ``ls NAME`` takes), for comparison.
- ``find cold``: ``shelf.find`` with an empty record cache: reads every manifest, writes the row
  summary.
- ``find warm``: the same query again in a new process: the listing, the row summary from the
  record cache, then only the answers read from their manifests.
- ``find warm, all matches``: a query without ``limit`` (about 1 in 6 versions match).
- ``ls --where (CLI)``: the whole command, process start-up included.

Figures go to docs/benchmarks.md by hand; this script prints them with the load average (the
machine is 2 cores shared with other work: quote medians).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WHERE = "metrics.auc >= 0.9 and tags.data == '2026-11'"

CHILD = r"""
import json, sys, time
import modelshelf
shelf = modelshelf.open(sys.argv[1], cache=sys.argv[2])
what = sys.argv[3]
start = time.perf_counter()
if what == "versions":
    found = shelf.versions("churn")
elif what == "find":
    found = shelf.find("churn", sys.argv[4], order_by="-metrics.auc", limit=5)
else:
    found = shelf.find("churn", sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - start, "count": len(found)}))
"""


def populate(root: Path, count: int) -> float:
    import attrs
    import modelshelf
    from modelshelf import convert, layout

    shelf = modelshelf.open(str(root / "shelf"), cache=root / "upload-cache")
    weights = root / "weights.bin"
    weights.write_bytes(os.urandom(1024))
    first = shelf.upload(
        "churn",
        weights,
        metrics={"auc": 0.5, "f1": 0.5},
        params={"C": 1.0},
        tags={"data": "2026-10"},
        metadata={"owner": "ana"},
    )
    rnd = random.Random(42)
    start = time.perf_counter()
    for number in range(2, count + 1):
        record = attrs.evolve(
            first,
            version=number,
            created_at=first.created_at + dt.timedelta(minutes=number),
            metrics={"auc": rnd.random(), "f1": rnd.random()},
            params={"C": rnd.choice([0.1, 1.0, 10.0])},
            tags={"data": rnd.choice(["2026-09", "2026-10", "2026-11"])},
            metadata={"owner": rnd.choice(["ana", "bo", "cy"])},
        )
        shelf.storage.put_if_absent(layout.version_key("churn", number), convert.to_json(record))
    shelf.set_alias("churn", "prod", count // 2)
    return time.perf_counter() - start


def child(root: Path, cache: Path, what: str) -> dict[str, float]:
    import json

    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root / "shelf"), str(cache), what, WHERE],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def cli(root: Path, cache: Path) -> float:
    env = {**os.environ, "MODELSHELF_URL": str(root / "shelf"), "MODELSHELF_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshelf",
            "ls",
            "churn",
            "--where",
            WHERE,
            "--sort",
            "-metrics.auc",
            "--limit",
            "5",
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(
        tempfile.mkdtemp(
            prefix="find-bench-",
            dir=Path(__file__).parent / "work"
            if (Path(__file__).parent / "work").is_dir()
            else None,
        )
    )
    try:
        print(f"publishing {args.versions} versions...", flush=True)
        took = populate(root, args.versions)
        print(f"  manifests written in {took:.1f} s", flush=True)
        results: dict[str, list[float]] = {
            k: []
            for k in (
                "versions()",
                "find cold",
                "find warm",
                "find warm, all matches",
                "ls --where (CLI)",
            )
        }
        counts: dict[str, int] = {}
        for run in range(args.repeat):
            cache = root / f"cache-{run}"
            for label, what in (
                ("versions()", "versions"),
                ("find cold", "find"),
                ("find warm", "find"),
                ("find warm, all matches", "all"),
            ):
                measured = child(root, cache, what)
                results[label].append(measured["seconds"])
                counts[label] = int(measured["count"])
            results["ls --where (CLI)"].append(cli(root, cache))
        print(
            f"\n{args.versions} versions, medians of {args.repeat}; load average {os.getloadavg()[0]:.1f}\n"
        )
        print("| measurement | median | runs | versions returned |")
        print("| --- | --- | --- | --- |")
        for label, values in results.items():
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(
                f"| {label} | {statistics.median(values):.2f} s | {runs} | {counts.get(label, 5)} |"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
