"""The benchmark suite keeps working: run ``bench/run.py --smoke`` and check what it produced.

Benchmarks are not unit tests: this asserts that every workload ran and produced positive numbers,
never that a number is good. The first run creates the modelstore virtual environment under
bench/work (about 25 s with a warm pip cache); later runs reuse it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Installed by ./dev (requirements/bench.txt, plugins/s3): missing ones fail here, never skip quietly.
import matplotlib  # noqa: F401
import modelshelf_s3  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"1", "2", "3", "4", "5", "6", "7", "8"}


def test_bench_smoke_runs_every_workload(tmp_path: Path) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    docs_before = docs.stat().st_mtime_ns if docs.exists() else None

    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    [results_file] = tmp_path.glob("*.json")
    results = json.loads(results_file.read_text())
    assert results["errors"] == {}
    assert results["preset"] == "smoke"
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["modelstore_venv_packages"]["modelstore"] == "0.0.82"

    medians = results["medians"]
    seen = {key.split("|")[0] for key in medians}
    assert seen == WORKLOADS
    for workload in WORKLOADS:
        tools = {key.split("|")[2] for key in medians if key.startswith(f"{workload}|")}
        assert "modelshelf" in tools, f"workload {workload} has no modelshelf numbers"
        if workload != "7":  # 7 is modelshelf's own memory as size grows (plus the limit)
            assert "modelstore" in tools, f"workload {workload} has no modelstore numbers"
    for key, values in medians.items():
        assert values["seconds"] > 0, key
        if not key.startswith("6|"):  # start-up probes do not measure memory
            assert values["peak_rss_mb"] > 0, key

    # S3 requests were really counted, in both tools' processes.
    assert medians["2|s3|modelshelf|upload"]["requests"] > 0
    assert medians["2|s3|modelstore|upload"]["requests"] > 0
    assert {t["workload"] for t in results["targets"]} == WORKLOADS

    report = (tmp_path / "benchmarks.md").read_text()
    assert "python bench/run.py --smoke" in report
    for number in sorted(WORKLOADS):
        assert f"## {number}." in report
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --output leaves the committed report alone.
    assert (docs.stat().st_mtime_ns if docs.exists() else None) == docs_before
