"""Targets, the Markdown report and the PNG plot, from a results JSON of ``bench/run.py``.

    python bench/report.py                       # latest bench/results/*.json -> docs/
    python bench/report.py bench/results/X.json  # a given run
    python bench/report.py X.json --output DIR   # somewhere else

``bench/notes.md`` (hand-written: profiles, causes, evidence) is appended to the generated page
verbatim, so regenerating the tables never loses the analysis.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MB = 1_000_000
TOOLS = ("limit", "modelshelf", "modelstore")

TITLES = {
    "1": "1. Large model, local shelf: upload and download vs `cp` and modelstore",
    "2": "2. Large model through S3 (moto server): vs raw boto3 and modelstore",
    "3": "3. List the versions of a model",
    "4": "4. Re-upload: same weights, changed config",
    "5": "5. Load the same version twice, in fresh processes",
    "6": "6. Import and CLI start-up",
    "7": "7. Peak memory (RSS of the client process) as the model grows",
    "8": "8. A directory of many small files",
}


def _m(
    results: dict[str, Any], workload: str, case: str, tool: str, op: str, metric: str = "seconds"
) -> float:
    entry = results.get("medians", {}).get(f"{workload}|{case}|{tool}|{op}")
    if not entry or metric not in entry:
        return math.nan
    return float(entry[metric])


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _target(
    workload: str, text: str, value: float, limit: float, kind: str, unit: str = "x"
) -> dict[str, Any]:
    """``kind``: ``max``, ``min``, or ``info`` (a measurement the issue asks for, with no limit)."""
    met = (value <= limit if kind == "max" else value >= limit) if not math.isnan(value) else False
    return {
        "workload": workload,
        "text": text,
        "value": value,
        "limit": limit,
        "kind": kind,
        "unit": unit,
        "met": bool(met),
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, evaluated on the medians of this run (missing data = missed)."""
    out: list[dict[str, Any]] = []
    ran = set(results.get("workloads_run", []))
    if "1" in ran:
        up = _m(results, "1", "local", "modelshelf", "upload")
        down = _m(results, "1", "local", "modelshelf", "download")
        floor = _m(results, "1", "local", "limit", "hash")
        out.append(
            _target(
                "1",
                "local upload <= 1.3x sha256 (hashlib.file_digest), fsync included",
                _ratio(up, floor),
                1.3,
                "max",
            )
        )
        out.append(
            _target(
                "1",
                "local upload >= 15x faster than modelstore",
                _ratio(_m(results, "1", "local", "modelstore", "upload"), up),
                15,
                "min",
            )
        )
        out.append(
            _target("1", "local download <= 1.5x the sha256 floor", _ratio(down, floor), 1.5, "max")
        )
        copy_floor = _m(results, "1", "local", "limit", "hash_copy")
        if not math.isnan(copy_floor):
            out.append(
                _target(
                    "1",
                    "local upload / read once, sha256 and write, fsync (the user-space floor)",
                    _ratio(up, copy_floor),
                    0,
                    "info",
                )
            )
        write_floor = _m(results, "1", "local", "limit", "hash_write")
        if not math.isnan(write_floor):
            out.append(
                _target(
                    "1",
                    "local download / read once, sha256 and write (the user-space floor)",
                    _ratio(down, write_floor),
                    0,
                    "info",
                )
            )
        shelf_copy = _m(results, "1", "local", "modelshelf", "copy")
        if not math.isnan(shelf_copy):
            out.append(
                _target(
                    "1",
                    "copy between local shelves <= 1.3x sha256, fsync included",
                    _ratio(shelf_copy, floor),
                    1.3,
                    "max",
                )
            )
            out.append(
                _target(
                    "1",
                    "copy between local shelves / the user-space floor of an upload",
                    _ratio(shelf_copy, copy_floor),
                    0,
                    "info",
                )
            )
    for workload, case in (("1", "local"), ("2", "s3")):
        kept = _m(results, workload, case, "modelshelf", "download_keep_cache")
        if workload in ran and not math.isnan(kept):
            out.append(
                _target(
                    workload,
                    f"{case} download keeping a cache copy (keep_cache=True) / the default",
                    _ratio(kept, _m(results, workload, case, "modelshelf", "download")),
                    0,
                    "info",
                )
            )
    if "2" in ran:
        out.append(
            _target(
                "2",
                "S3 upload <= 1.15x raw boto3",
                _ratio(
                    _m(results, "2", "s3", "modelshelf", "upload"),
                    _m(results, "2", "s3", "limit", "upload"),
                ),
                1.15,
                "max",
            )
        )
        out.append(
            _target(
                "2",
                "S3 download <= 1.2x one streamed boto3 get_object",
                _ratio(
                    _m(results, "2", "s3", "modelshelf", "download"),
                    _m(results, "2", "s3", "limit", "download"),
                ),
                1.2,
                "max",
            )
        )
        ranged = _m(results, "2", "s3", "modelshelf", "download_ranges")
        if not math.isnan(ranged):
            out.append(
                _target(
                    "2",
                    "S3 download in 4 parallel ranges / one stream (moto re-reads the "
                    "object per range: no gain expected there)",
                    _ratio(ranged, _m(results, "2", "s3", "modelshelf", "download")),
                    math.nan,
                    "info",
                )
            )
    if "3" in ran:
        out.append(
            _target(
                "3",
                "S3 listing (list_versions, cold) >= 20x faster than modelstore list_models",
                _ratio(
                    _m(results, "3", "s3", "modelstore", "list"),
                    _m(results, "3", "s3", "modelshelf", "list_numbers"),
                ),
                20,
                "min",
            )
        )
        out.append(
            _target(
                "3",
                "S3 versions(), cold cache: <= 10 requests",
                _m(results, "3", "s3", "modelshelf", "list_cold", "requests"),
                10,
                "max",
                "requests",
            )
        )
        out.append(
            _target(
                "3",
                "S3 versions(), cold cache: >= 10x faster than modelstore list_models",
                _ratio(
                    _m(results, "3", "s3", "modelstore", "list"),
                    _m(results, "3", "s3", "modelshelf", "list_cold"),
                ),
                10,
                "min",
            )
        )
        out.append(
            _target(
                "3",
                "S3 versions(), warm cache: no slower than the previous run",
                _m(results, "3", "s3", "modelshelf", "list_warm"),
                math.nan,
                "info",
                "s",
            )
        )
    if "4" in ran or "1" in ran or "2" in ran:
        for case in ("local", "s3"):
            if f"4|{case}|modelshelf|reupload" not in results.get("medians", {}):
                continue
            out.append(
                _target(
                    "4",
                    f"{case} re-upload writes < 1 MB",
                    _m(results, "4", case, "modelshelf", "reupload", "store_growth_bytes") / MB,
                    1.0,
                    "max",
                    "MB",
                )
            )
    if "5|s3|modelshelf|load2" in results.get("medians", {}):
        out.append(
            _target(
                "5",
                "S3 second load reads no blob (< 1 MB received)",
                _m(results, "5", "s3", "modelshelf", "load2", "bytes_received") / MB,
                1.0,
                "max",
                "MB",
            )
        )
    if "6" in ran:
        out.append(
            _target(
                "6",
                "import modelshelf < 50 ms (median)",
                _m(results, "6", "local", "modelshelf", "import") * 1000,
                50,
                "max",
                "ms",
            )
        )
    if "7" in ran:
        worst = math.nan
        sizes = results["params"]["rss_sizes_mb"]
        growth = math.nan
        for case_base in ("local", "s3"):
            for op in ("upload", "download"):
                values = [
                    _m(results, "7", f"{case_base}-{s}MB", "modelshelf", op, "peak_rss_mb")
                    for s in sizes
                ]
                if any(not math.isnan(v) for v in values):
                    worst = max(v for v in [worst, *values] if not math.isnan(v))
                if len(values) == 2 and not any(math.isnan(v) for v in values):
                    g = values[1] - values[0]
                    growth = g if math.isnan(growth) else max(growth, g)
        out.append(
            _target(
                "7",
                f"peak RSS < 150 MB at {' and '.join(f'{s} MB' for s in sizes)}",
                worst,
                150,
                "max",
                "MB",
            )
        )
        out.append(
            _target(
                "7",
                f"RSS flat: growth from {sizes[0]} MB to {sizes[-1]} MB < 20 MB",
                growth,
                20,
                "max",
                "MB",
            )
        )
    if "8" in ran:
        for case in ("local", "s3"):
            for op in ("upload", "download"):
                out.append(
                    _target(
                        "8",
                        f"{case} small files {op} at least as fast as modelstore (>= 1.0x)",
                        _ratio(
                            _m(results, "8", case, "modelstore", op),
                            _m(results, "8", case, "modelshelf", op),
                        ),
                        1.0,
                        "min",
                    )
                )
    return out


# --- formatting --------------------------------------------------------------------------------


def _fmt_s(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _fmt_x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _fmt_bytes(value: float) -> str:
    if math.isnan(value):
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def _fmt_n(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _label(results: dict[str, Any], workload: str, case: str, op: str) -> str:
    for run in results.get("runs", []):
        if (run["workload"], run["case"], run["tool"], run["op"]) == (workload, case, "limit", op):
            return run.get("label", "limit")
    return "limit"


def _extra_transfer_rows(
    results: dict[str, Any], workload: str, case: str, op: str
) -> list[list[str]]:
    """Rows of modelshelf alone against a limit: the download's user-space floor, a download that
    keeps a cache copy, and a copy between two local shelves."""
    pairs = {
        "download_hash_write": [("download", "hash_write")],
        "download_keep_cache": [("download_keep_cache", "download")],
        "copy": [("copy", "hash"), ("copy", "hash_copy")],
    }[op]
    rows = []
    for shelf_op, limit_op in pairs:
        shelf = _m(results, workload, case, "modelshelf", shelf_op)
        limit = _m(results, workload, case, "limit", limit_op)
        if math.isnan(shelf) or math.isnan(limit):
            continue
        what = {
            "download": "download",
            "download_keep_cache": "download with `keep_cache=True`",
            "copy": "copy to another local shelf",
        }[shelf_op]
        rows.append(
            [
                f"{what} vs `{_label(results, workload, case, limit_op)}`",
                _fmt_s(limit),
                _fmt_s(shelf),
                "",
                _fmt_x(_ratio(shelf, limit)),
                "",
                f"{_fmt_n(_m(results, workload, case, 'modelshelf', shelf_op, 'peak_rss_mb'))} / ",
                f"{_fmt_n(_m(results, workload, case, 'modelshelf', shelf_op, 'requests'))} / "
                if case == "s3"
                else "",
            ]
        )
    return rows


def _transfer_section(results: dict[str, Any], workload: str, case: str) -> str:
    rows = []
    ops = (
        [
            "upload",
            "upload_fsync",
            "hash",
            "hash_copy",
            "download",
            "download_hash",
            "download_hash_write",
            "download_keep_cache",
            "copy",
        ]
        if workload == "1"
        else ["upload", "download", "download_keep_cache", "download_ranges", "download_file"]
    )
    for op in ops:
        if op in ("download_hash_write", "download_keep_cache", "copy"):
            rows.extend(_extra_transfer_rows(results, workload, case, op))
            continue
        if op == "download_hash":
            limit = _m(results, workload, case, "limit", "hash")
            if not math.isnan(limit):
                rows.append(
                    [
                        f"download vs `{_label(results, workload, case, 'hash')}`",
                        _fmt_s(limit),
                        _fmt_s(_m(results, workload, case, "modelshelf", "download")),
                        "",
                        _fmt_x(
                            _ratio(_m(results, workload, case, "modelshelf", "download"), limit)
                        ),
                        "",
                        "",
                        "",
                    ]
                )
            continue
        if op == "download_ranges":
            ranged = _m(results, workload, case, "modelshelf", op)
            limit = _m(results, workload, case, "limit", "download")
            if not math.isnan(ranged):
                rows.append(
                    [
                        f"download in 4 parallel ranges vs `{_label(results, workload, case, 'download')}` "
                        "(1 run)",
                        _fmt_s(limit),
                        _fmt_s(ranged),
                        "",
                        _fmt_x(_ratio(ranged, limit)),
                        "",
                        f"{_fmt_n(_m(results, workload, case, 'modelshelf', op, 'peak_rss_mb'))} / ",
                        f"{_fmt_n(_m(results, workload, case, 'modelshelf', op, 'requests'))} / ",
                    ]
                )
            continue
        if op == "download_file":
            limit = _m(results, workload, case, "limit", op)
            store = _m(results, workload, case, "modelstore", "download")
            if not math.isnan(limit):
                rows.append(
                    [
                        f"download vs `{_label(results, workload, case, op)}` (1 run)",
                        _fmt_s(limit),
                        _fmt_s(_m(results, workload, case, "modelshelf", "download")),
                        _fmt_s(store),
                        _fmt_x(
                            _ratio(_m(results, workload, case, "modelshelf", "download"), limit)
                        ),
                        "",
                        "",
                        f"{_fmt_n(_m(results, workload, case, 'limit', op, 'requests'))} (limit)",
                    ]
                )
            continue
        if op in ("upload_fsync", "hash", "hash_copy"):
            if f"{workload}|{case}|limit|{op}" not in results.get("medians", {}):
                continue
            limit = _m(results, workload, case, "limit", op)
            rows.append(
                [
                    f"upload vs `{_label(results, workload, case, op)}`",
                    _fmt_s(limit),
                    _fmt_s(_m(results, workload, case, "modelshelf", "upload")),
                    "",
                    _fmt_x(_ratio(_m(results, workload, case, "modelshelf", "upload"), limit)),
                    "",
                    "",
                    "",
                ]
            )
            continue
        limit = _m(results, workload, case, "limit", op)
        shelf = _m(results, workload, case, "modelshelf", op)
        store = _m(results, workload, case, "modelstore", op)
        rows.append(
            [
                f"{op} vs `{_label(results, workload, case, op)}`",
                _fmt_s(limit),
                _fmt_s(shelf),
                _fmt_s(store),
                _fmt_x(_ratio(shelf, limit)),
                _fmt_x(_ratio(store, shelf)),
                f"{_fmt_n(_m(results, workload, case, 'modelshelf', op, 'peak_rss_mb'))} / "
                f"{_fmt_n(_m(results, workload, case, 'modelstore', op, 'peak_rss_mb'))}",
                f"{_fmt_n(_m(results, workload, case, 'modelshelf', op, 'requests'))} / "
                f"{_fmt_n(_m(results, workload, case, 'modelstore', op, 'requests'))}"
                if case == "s3"
                else "",
            ]
        )
    header = [
        "operation",
        "limit",
        "modelshelf",
        "modelstore",
        "modelshelf / limit",
        "modelstore / modelshelf",
        "peak RSS MB (shelf / store)",
        "requests (shelf / store)",
    ]
    return _table(header, rows)


def _section(results: dict[str, Any], workload: str) -> str:
    p = results["params"]
    size = f"{p['size_mb']} MiB"
    if workload in ("1", "2"):
        case = "local" if workload == "1" else "s3"
        intro = (
            f"A model directory: `weights.bin` ({size} of random bytes) + `config.json`. "
            "Each tool starts on an empty store and a cold cache; download includes sha256 "
            "verification for modelshelf and gunzip/untar for modelstore. "
        )
        if workload == "1":
            intro += (
                "modelshelf fsyncs what it writes (`MODELSHELF_FSYNC=1`, the default), `cp` does "
                "not; `cp + sync FILE` is the durable equivalent."
            )
        return intro + "\n\n" + _transfer_section(results, workload, case)
    if workload == "3":
        rows = []
        for case in ("local", "s3"):
            store = _m(results, "3", case, "modelstore", "list")
            for tool, op, label in (
                ("modelshelf", "list_numbers", "modelshelf `list_versions()` (numbers and dates)"),
                (
                    "modelshelf",
                    "list_first",
                    "modelshelf `versions()`, first listing "
                    "(no index yet: reads every manifest, writes the indexes; 1 run)",
                ),
                ("modelshelf", "list_cold", "modelshelf `versions()`, cold cache"),
                ("modelshelf", "list_warm", "modelshelf `versions()`, warm cache"),
                ("modelstore", "list", "modelstore `list_models()`"),
            ):
                value = _m(results, "3", case, tool, op)
                rows.append(
                    [
                        case,
                        label,
                        _fmt_s(value),
                        _fmt_x(_ratio(store, value)) if tool == "modelshelf" else "",
                        _fmt_n(_m(results, "3", case, tool, op, "requests"))
                        if case == "s3"
                        else "",
                        _fmt_s(_m(results, "3", case, tool, op, "open_seconds")),
                    ]
                )
        populate = ", ".join(
            f"{case} {tool} {_fmt_s(_m(results, '3', case, tool, 'populate'))}"
            for case in ("local", "s3")
            for tool in ("modelshelf", "modelstore")
        )
        return (
            f"{p['versions']} versions of a small model, each listed in a fresh process. "
            "modelshelf's cold run starts with an empty cache; the warm run is the next process "
            "with the same cache (records are cached by key and ETag; the listing itself is "
            f"always fresh). Setup time to upload the {p['versions']} versions: {populate}.\n\n"
            + _table(
                [
                    "store",
                    "call",
                    "median time",
                    "modelstore / this",
                    "S3 requests",
                    "open store (not included)",
                ],
                rows,
            )
        )
    if workload == "4":
        rows = []
        for case in ("local", "s3"):
            for tool in ("modelshelf", "modelstore"):
                rows.append(
                    [
                        case,
                        tool,
                        _fmt_s(_m(results, "4", case, tool, "reupload")),
                        _fmt_bytes(_m(results, "4", case, tool, "reupload", "store_growth_bytes")),
                        _fmt_bytes(_m(results, "4", case, tool, "reupload", "bytes_sent"))
                        if case == "s3"
                        else "",
                        _fmt_n(_m(results, "4", case, tool, "reupload", "requests"))
                        if case == "s3"
                        else "",
                    ]
                )
        return (
            f"Version 2 of the workload 1/2 model: the same {size} `weights.bin`, a changed "
            "`config.json`. Store growth is measured by the suite on the store itself.\n\n"
            + _table(["store", "tool", "time", "store growth", "bytes PUT", "S3 requests"], rows)
        )
    if workload == "5":
        rows = []
        for case in ("local", "s3"):
            for tool in ("modelshelf", "modelstore"):
                for op in ("load1", "load2"):
                    w, src = (
                        ("5", op)
                        if not (tool == "modelstore" and op == "load1")
                        else ("1" if case == "local" else "2", "download")
                    )
                    rows.append(
                        [
                            case,
                            tool,
                            "first" if op == "load1" else "second",
                            _fmt_s(_m(results, w, case, tool, src)),
                            _fmt_bytes(_m(results, w, case, tool, src, "bytes_received"))
                            if case == "s3"
                            else _fmt_bytes(_m(results, w, case, tool, src, "read_bytes")),
                            _fmt_n(_m(results, w, case, tool, src, "requests"))
                            if case == "s3"
                            else "",
                        ]
                    )
        return (
            '`shelf.load("model:2")` twice, each in a new process, sharing one `MODELSHELF_CACHE`. '
            "modelstore has no cache and cannot load a `model_file` model into memory; its `load` "
            "downloads and extracts the archive first, so its `download` is measured (its first load is the "
            "workload 1/2 download). Bytes read: "
            "S3 = response bytes counted by a botocore hook; local = `rchar` of the process during "
            "the call (includes Python modules imported lazily).\n\n"
            + _table(["store", "tool", "load", "time", "bytes read", "S3 requests"], rows)
        )
    if workload == "6":
        rows = []
        base = _m(results, "6", "local", "python", "python_startup")
        rows.append(["`python -c pass` (interpreter start, wall)", _fmt_s(base), "", ""])
        for op, label in (
            ("import", "import (timed inside the process)"),
            ("import_open", "import + open a local store"),
            ("cli_help", "`modelshelf --help` / `python -m modelstore --help` (wall)"),
        ):
            shelf = _m(results, "6", "local", "modelshelf", op)
            store = _m(results, "6", "local", "modelstore", op)
            rows.append([label, _fmt_s(shelf), _fmt_s(store), _fmt_x(_ratio(store, shelf))])
        return (
            f"Median of {p['import_runs']} fresh processes each; modelstore's environment also has "
            "scikit-learn, which its constructor imports.\n\n"
            + _table(["measure", "modelshelf", "modelstore", "modelstore / modelshelf"], rows)
        )
    if workload == "7":
        rows = []
        for size_mb in p["rss_sizes_mb"]:
            for backend in ("local", "s3"):
                case = f"{backend}-{size_mb}MB"
                skipped = [
                    r
                    for r in results.get("runs", [])
                    if r["workload"] == "7" and r["case"] == case and r["op"] == "skipped"
                ]
                if skipped:
                    rows.append(
                        [
                            backend,
                            f"{size_mb} MiB",
                            "skipped: " + skipped[0]["reason"],
                            "",
                            "",
                            "",
                            "",
                        ]
                    )
                    continue
                rows.append(
                    [
                        backend,
                        f"{size_mb} MiB",
                        _fmt_n(_m(results, "7", case, "modelshelf", "upload", "peak_rss_mb")),
                        _fmt_n(_m(results, "7", case, "modelshelf", "download", "peak_rss_mb")),
                        _fmt_n(_m(results, "7", case, "limit", "upload", "peak_rss_mb")),
                        _fmt_s(_m(results, "7", case, "modelshelf", "upload")),
                        _fmt_s(_m(results, "7", case, "modelshelf", "download")),
                    ]
                )
        ms_rows = [
            f"{case}: upload {_fmt_n(_m(results, w, case, 'modelstore', 'upload', 'peak_rss_mb'))} MB, "
            f"download {_fmt_n(_m(results, w, case, 'modelstore', 'download', 'peak_rss_mb'))} MB"
            for w, case in (("1", "local"), ("2", "s3"))
        ]
        return (
            "Peak RSS (`VmHWM` at exit) of the whole client process, interpreter and imports "
            "included; the moto server's memory is not counted. Sizes above 1 GiB run once. "
            f"For comparison, modelstore at {size} (workloads 1-2): {'; '.join(ms_rows)}.\n\n"
            + _table(
                [
                    "store",
                    "size",
                    "modelshelf upload MB",
                    "modelshelf download MB",
                    "limit upload MB (cp / boto3)",
                    "upload time",
                    "download time",
                ],
                rows,
            )
        )
    if workload == "8":
        rows = []
        for case in ("local", "s3"):
            for op in ("upload", "download"):
                limit = _m(results, "8", case, "limit", op)
                shelf = _m(results, "8", case, "modelshelf", op)
                store = _m(results, "8", case, "modelstore", op)
                rows.append(
                    [
                        case,
                        f"{op} vs `{_label(results, '8', case, op)}`",
                        _fmt_s(limit),
                        _fmt_s(shelf),
                        _fmt_s(store),
                        _fmt_x(_ratio(shelf, limit)),
                        _fmt_x(_ratio(store, shelf)),
                        f"{_fmt_n(_m(results, '8', case, 'modelshelf', op, 'requests'))} / "
                        f"{_fmt_n(_m(results, '8', case, 'modelstore', op, 'requests'))}"
                        if case == "s3"
                        else "",
                    ]
                )
        return (
            f"{p['small_files']} files of 4 KiB in sub-directories of 100. modelstore cannot "
            "upload a directory: it gets the first file as `model` and the rest as `extra_files` "
            "(stored flattened in one tar.gz).\n\n"
            + _table(
                [
                    "store",
                    "operation",
                    "limit",
                    "modelshelf",
                    "modelstore",
                    "modelshelf / limit",
                    "modelstore / modelshelf",
                    "requests (shelf / store)",
                ],
                rows,
            )
        )
    return ""


def _target_value(t: dict[str, Any]) -> str:
    if math.isnan(t["value"]):
        return "no data"
    if t["unit"] == "x":
        return f"{t['value']:.2f}x"
    if t["unit"] == "MB":
        return _fmt_bytes(t["value"] * MB)
    if t["unit"] == "s":
        return _fmt_s(t["value"])
    if t["unit"] == "requests":
        return f"{t['value']:.0f} requests"
    return f"{t['value']:.2f} {t['unit']}"


def _targets_table(results: dict[str, Any]) -> str:
    """Met / missed per target, with the same measure taken from the previous run's medians when
    ``results["previous"]`` names one (``--previous``)."""
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    name = results.get("previous")
    if name:
        try:
            old = json.loads((BENCH / "results" / name).read_text())
            previous = {(t["workload"], t["text"]): t for t in targets(old)}
        except (OSError, ValueError, KeyError):
            previous = {}
    rows = []
    for t in results.get("targets", []):
        before = previous.get((t["workload"], t["text"]))
        if t["kind"] == "info":
            result = "measured"
        elif math.isnan(t["value"]):
            result = "not measured"
        else:
            result = "met" if t["met"] else "**missed**"
        rows.append(
            [
                t["workload"],
                t["text"],
                _target_value(before) if before else "-",
                _target_value(t),
                result,
            ]
        )
    header = ["workload", "target", f"previous run ({name or 'none'})", "this run", "result"]
    return _table(header, rows)


def markdown(results: dict[str, Any], png_name: str, results_name: str) -> str:
    m = results["machine"]
    load = results.get("load_average", {})
    loads = ", ".join(f"w{w} {v['before'][0]:.1f}→{v['after'][0]:.1f}" for w, v in load.items())
    pk = m["packages"]
    ms = m["modelstore_venv_packages"]
    parts = [
        "# Benchmarks",
        "",
        f"<!-- Generated by bench/report.py from bench/results/{results_name}; edit bench/notes.md "
        "for the analysis, not this file. -->",
        "",
        "modelshelf against modelstore 0.0.82 and against the physical limit (`cp`, raw boto3), "
        "measured side by side in one run on the same random data and the same servers, tools "
        "alternating run by run. Every number is the median of the repetitions.",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"- Run: {results['started_at']} - {results.get('finished_at', '?')}, preset `{results['preset']}`, "
        f"{results['params']['repeat']} repetitions; commit `{m['git_commit']}`.",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}. "
        "Shared with other engineers' test runs: 1-minute load average per workload (before→after): "
        f"{loads}.",
        f"- modelshelf {pk.get('modelshelf', '?')}, modelshelf-s3 {pk.get('modelshelf-s3', '?')}, boto3 "
        f"{pk.get('boto3', '?')}, moto {pk.get('moto', '?')} (S3 server: `modelshelf_s3.testing.moto_server`, "
        "one local process, writes serialised). modelstore venv: modelstore "
        f"{ms.get('modelstore', '?')}, boto3 {ms.get('boto3', '?')}, scikit-learn {ms.get('scikit-learn', '?')}.",
        *[f"- Amended: {a}" for a in results.get("amendments", [])],
        "- Every operation runs in a fresh process (`bench/child_*.py`); times are the API call only "
        "(workload 6 covers start-up). Data lives on the local disk (`bench/work/`), in the page cache "
        "for every tool alike.",
        "",
        "## Targets",
        "",
        _targets_table(results),
        "",
        f"![benchmark plots]({png_name})",
        "",
    ]
    if results.get("errors"):
        parts += ["## Errors", ""]
        for w, err in results["errors"].items():
            parts += [f"Workload {w} failed:", "", "```", err.strip()[-1500:], "```", ""]
    ran = set(results.get("workloads_run", []))
    for workload in TITLES:
        if workload in ran or (workload in ("4", "5") and ran & {"1", "2"}):
            parts += [f"## {TITLES[workload]}", "", _section(results, workload), ""]
    notes = BENCH / "notes.md"
    if notes.exists():
        parts += [notes.read_text().strip(), ""]
    return "\n".join(parts)


# --- plot -------------------------------------------------------------------------------------------


def plot(results: dict[str, Any], png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"limit": "#9e9e9e", "modelshelf": "#1f77b4", "modelstore": "#ff7f0e"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    p = results["params"]

    def bars(
        ax: Any,
        title: str,
        groups: list[tuple[str, dict[str, float]]],
        unit: str = "s",
        log: bool = False,
    ) -> None:
        tools = [t for t in TOOLS if any(t in g for _, g in groups)] or list(TOOLS)
        width = 0.8 / len(tools)
        plotted = False
        for i, tool in enumerate(tools):
            xs, ys = [], []
            for j, (_, values) in enumerate(groups):
                v = values.get(tool, math.nan)
                if not math.isnan(v):
                    xs.append(j + (i - (len(tools) - 1) / 2) * width)
                    ys.append(v)
            plotted = plotted or any(y > 0 for y in ys)  # a log scale needs a positive value
            rects = ax.bar(xs, ys, width, label=tool, color=colors.get(tool, "#555"))
            for rect, y in zip(rects, ys, strict=True):
                text = f"{y:.2f}" if y < 10 else f"{y:.0f}"
                ax.annotate(
                    text,
                    (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        if log and plotted:
            ax.set_yscale("log")
        ax.legend(fontsize=7)

    def triple(workload: str, case: str, op: str) -> dict[str, float]:
        return {t: _m(results, workload, case, t, op) for t in TOOLS}

    size = f"{p['size_mb']} MiB"
    bars(
        axes[0, 0],
        f"1. local, {size}: time (lower is better)",
        [(op, triple("1", "local", op)) for op in ("upload", "download")]
        + [("re-upload", {t: _m(results, "4", "local", t, "reupload") for t in TOOLS[1:]})],
    )
    bars(
        axes[0, 1],
        f"2. S3 (moto), {size}: time",
        [(op, triple("2", "s3", op)) for op in ("upload", "download")]
        + [("re-upload", {t: _m(results, "4", "s3", t, "reupload") for t in TOOLS[1:]})],
    )
    bars(
        axes[0, 2],
        f"3. list {p['versions']} versions: time (log)",
        [
            (
                f"{case} {label}",
                {
                    "modelshelf": _m(results, "3", case, "modelshelf", op),
                    "modelstore": _m(results, "3", case, "modelstore", "list"),
                },
            )
            for case in ("local", "s3")
            for op, label in (
                ("list_numbers", "list_versions"),
                ("list_cold", "cold"),
                ("list_warm", "warm"),
            )
        ],
        log=True,
    )
    bars(
        axes[1, 0],
        "6. start-up: ms",
        [
            ("import", {t: _m(results, "6", "local", t, "import") * 1000 for t in TOOLS[1:]}),
            (
                "import+open",
                {t: _m(results, "6", "local", t, "import_open") * 1000 for t in TOOLS[1:]},
            ),
            ("CLI --help", {t: _m(results, "6", "local", t, "cli_help") * 1000 for t in TOOLS[1:]}),
        ],
        unit="ms",
    )
    axes[1, 0].axhline(50, color="#1f77b4", linestyle=":", linewidth=1)

    ax = axes[1, 1]
    sizes = p["rss_sizes_mb"]
    for backend, style in (("local", "-"), ("s3", "--")):
        for op, marker in (("upload", "o"), ("download", "s")):
            ys = [
                _m(results, "7", f"{backend}-{s}MB", "modelshelf", op, "peak_rss_mb") for s in sizes
            ]
            ax.plot(sizes, ys, style, marker=marker, label=f"modelshelf {backend} {op}")
    for backend, w in (("local", "1"), ("s3", "2")):
        v = _m(results, w, backend, "modelstore", "upload", "peak_rss_mb")
        if not math.isnan(v):
            ax.plot(
                [p["size_mb"]],
                [v],
                "x",
                color="#ff7f0e",
                markersize=9,
                label=f"modelstore {backend} upload",
            )
    ax.axhline(150, color="red", linestyle=":", linewidth=1, label="target 150 MB")
    has_rss = any(
        not math.isnan(_m(results, "7", f"{b}-{s}MB", "modelshelf", o, "peak_rss_mb"))
        for b in ("local", "s3")
        for o in ("upload", "download")
        for s in sizes
    )
    if has_rss:  # a log axis of nothing cannot be drawn (runs without workload 7)
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{s} MiB" for s in sizes])
    ax.set_ylim(bottom=0)
    ax.set_title("7. peak RSS of the client process (MB)", fontsize=10)
    ax.legend(fontsize=7)

    bars(
        axes[1, 2],
        f"8. {p['small_files']} x 4 KiB files: time (log)",
        [
            (f"{case} {op}", triple("8", case, op))
            for case in ("local", "s3")
            for op in ("upload", "download")
        ],
        log=True,
    )
    fig.suptitle(
        f"modelshelf vs modelstore 0.0.82 vs the limit — {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores (median of {p['repeat']})",
        fontsize=11,
    )
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def write_report(
    results: dict[str, Any], md_path: Path, png_path: Path, results_path: Path
) -> None:
    if "targets" not in results:
        results["targets"] = targets(results)
    plot(results, png_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(results, png_path.name, results_path.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        help="results JSON (default: the most recently written one)",
    )
    parser.add_argument(
        "--output", type=Path, help="directory for benchmarks.md/.png (default docs/)"
    )
    parser.add_argument(
        "--previous",
        help="a results file name in bench/results/ whose figures go beside "
        "this run's in the targets table",
    )
    args = parser.parse_args()
    path = args.results
    if path is None:
        candidates = sorted((BENCH / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise SystemExit("no results in bench/results/: run `python bench/run.py` first")
        path = candidates[-1]
    results = json.loads(path.read_text())
    results["targets"] = targets(results)
    if args.previous:
        results["previous"] = args.previous
    out = args.output or ROOT / "docs"
    write_report(results, out / "benchmarks.md", out / "benchmarks.png", path)
    print(out / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
