"""Merge workloads of several ``bench/run.py`` results into one file for ``report.py``.

A full run on a machine shared with other work can catch one workload at a bad moment (another
process flushing gigabytes, say). Re-run that workload alone (``run.py --full --only N``) and
merge: every figure keeps the load average and commit of the run it came from, and the merged
file says which workload came from which run.

    python bench/merge.py BASE.json --take 1=RERUN.json --take 8=OTHER.json -o MERGED.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def merge(base: dict[str, Any], takes: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    notes = []
    for workload, (name, other) in sorted(takes.items()):
        if workload not in other.get("workloads_run", []):
            raise SystemExit(f"{name} did not run workload {workload}")
        merged["runs"] = [r for r in merged["runs"] if r["workload"] != workload] + [
            r for r in other["runs"] if r["workload"] == workload
        ]
        merged["medians"] = {
            k: v for k, v in merged["medians"].items() if k.split("|")[0] != workload
        } | {k: v for k, v in other["medians"].items() if k.split("|")[0] == workload}
        merged.setdefault("load_average", {})[workload] = other["load_average"][workload]
        if workload not in merged["workloads_run"]:
            merged["workloads_run"] = sorted([*merged["workloads_run"], workload], key=int)
        notes.append(
            f"workload {workload} from `{name}` (`{other['command']}`, commit "
            f"`{other['machine'].get('git_commit', '?')}`, {other['params']['repeat']} repetitions)"
        )
    merged["amendments"] = [*merged.get("amendments", []), "merged runs: " + "; ".join(notes)]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--take", action="append", default=[], metavar="WORKLOAD=FILE")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    takes = {}
    for item in args.take:
        workload, _, file = item.partition("=")
        path = Path(file)
        takes[workload] = (path.name, json.loads(path.read_text()))
    merged = merge(json.loads(args.base.read_text()), takes)
    merged["command"] = f"{merged['command']} (merged: see the amendments)"
    args.output.write_text(json.dumps(merged, indent=1))
    print(args.output)


if __name__ == "__main__":
    main()
