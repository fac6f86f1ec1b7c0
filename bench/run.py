"""Benchmarks: modelshelf against modelstore 0.0.82 and against the physical limit, in one run.

    python bench/run.py              # 1 GiB transfers, 1,000 versions, 2,000 small files, 3 reps
    python bench/run.py --full       # the same plus peak RSS at 4 GiB (what docs/benchmarks.md shows)
    python bench/run.py --smoke      # MB sizes, 2 reps, under 2 minutes (what CI runs)
    python bench/run.py --only 1,3 --repeat 5 --size-mb 256

Run from the repository root with modelshelf, modelshelf-s3 and modelshelf-sklearn installed in
the current environment, plus ``requirements/bench.txt``. On first use the suite creates
``bench/work/venv-modelstore`` (``python -m venv`` + pip: modelstore==0.0.82, scikit-learn,
boto3) and reuses it afterwards. Both tools run in fresh child processes (``bench/child_*.py``),
on the same generated random data and the same moto S3 server, alternating tools run by run;
the tables quote medians. Raw results go to ``bench/results/<timestamp>.json``; the report to
``docs/benchmarks.md`` and ``docs/benchmarks.png`` (or all three to ``--output DIR``).
Nothing is downloaded at run time except the modelstore environment's packages, once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
VENV = WORK / "venv-modelstore"
#: This run's files (data, stores, caches, moto's spool): per process, so two runs (a developer's
#: and the CI smoke test) never delete each other's files. Removed at the end of the run.
RUN = WORK / f"run-{os.getpid()}"
MODELSTORE_REQUIREMENTS = ["modelstore==0.0.82", "scikit-learn", "boto3"]
MiB = 1 << 20
BUCKET = "bench"

sys.path.insert(0, str(BENCH))
import report  # noqa: E402  (bench/report.py, next to this file)

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "size_mb": 8,
        "repeat": 2,
        "versions": 20,
        "small_files": 50,
        "rss_sizes_mb": [8, 32],
        "import_runs": 3,
    },
    "default": {
        "size_mb": 1024,
        "repeat": 3,
        "versions": 1000,
        "small_files": 2000,
        "rss_sizes_mb": [256, 1024],
        "import_runs": 10,
    },
    "full": {
        "size_mb": 1024,
        "repeat": 3,
        "versions": 1000,
        "small_files": 2000,
        "rss_sizes_mb": [1024, 4096],
        "import_runs": 10,
    },
}
SMALL_FILE_BYTES = 4096

WORKLOADS = {
    "1": "local_transfer",
    "2": "s3_transfer",
    "3": "list_versions",
    "4": "reupload",
    "5": "second_load",
    "6": "import_time",
    "7": "peak_rss",
    "8": "small_files",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ChildFailed(RuntimeError):
    pass


# --- environment ---------------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_modelstore_venv() -> Path:
    """Create (once) the modelstore virtual environment; reuse it when its requirements match."""
    stamp = VENV / ".bench-requirements"
    wanted = "\n".join(MODELSTORE_REQUIREMENTS)
    python = venv_python()
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits for the one creating it
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        _create_venv(python, stamp, wanted)
    return python


def _create_venv(python: Path, stamp: Path, wanted: str) -> None:
    log(
        f"creating {VENV.relative_to(ROOT)} with {' '.join(MODELSTORE_REQUIREMENTS)} (first run only)"
    )
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *MODELSTORE_REQUIREMENTS,
        ],
        check=True,
    )
    stamp.write_text(wanted)


def _versions_in(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        f"names = {names!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    return json.loads(
        subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    )


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram / (1 << 30), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "filesystem_note": "work files on the same local disk as the repository (bench/work)",
        "git_commit": commit,
        "packages": _versions_in(
            sys.executable,
            [
                "modelshelf",
                "modelshelf-s3",
                "modelshelf-sklearn",
                "boto3",
                "botocore",
                "moto",
                "matplotlib",
            ],
        ),
        "modelstore_venv_packages": _versions_in(
            str(venv_python()), ["modelstore", "boto3", "botocore", "scikit-learn", "numpy"]
        ),
        "load_average_at_start": list(os.getloadavg()),
    }


# --- data and stores -----------------------------------------------------------------------


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, 8 * MiB))
            out.write(piece)
            left -= len(piece)


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):  # deleted while we walked
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            # Cache blobs are read-only; make them writable so rmtree works everywhere.
            shutil.rmtree(path, onerror=_force_remove)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _force_remove(function: Callable[[str], Any], path: str, _: Any) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o755)
        shutil.rmtree(path, onerror=_force_remove)
    else:
        os.unlink(path)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Bench:
    """One benchmark run: the moto server, the child-process runner, and the collected results."""

    def __init__(self, params: dict[str, Any], endpoint: str, ms_python: Path) -> None:
        self.params = params
        self.endpoint = endpoint
        self.ms_python = ms_python
        self.base_env = {**os.environ}
        from modelshelf_s3.testing import DUMMY_CREDENTIALS

        self.base_env.update(DUMMY_CREDENTIALS)
        self.base_env["AWS_ENDPOINT_URL"] = endpoint
        for name in (
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL_S3",
            "MODELSHELF_URL",
            "PYTHONDONTWRITEBYTECODE",
        ):
            self.base_env.pop(name, None)
        # Compiled bytecode, as every user has it: a wheel install ships it, pip compiles it, and
        # Python writes it on first import. With PYTHONDONTWRITEBYTECODE set (as on some CI and dev
        # machines) an editable modelshelf would be recompiled in every process while modelstore's
        # site-packages keep pip's .pyc files. The prefix keeps the .pyc files in bench/work, out of
        # the source tree; the warm-up fills it before anything is measured.
        self.base_env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
        # One stream per blob, like the `get_object, streamed` limit: moto answers every ranged GET
        # by reading the whole object, so parallel ranges (the default, 4) are measured once, as
        # their own row of workload 2, not in every S3 download and load.
        self.base_env["MODELSHELF_RANGE_WORKERS"] = "1"
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.runs: list[dict[str, Any]] = []
        self.cache_counter = 0

    # --- children ---

    def child(
        self,
        kind: str,
        op: str,
        args: dict[str, Any],
        cache: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        scripts = {
            "modelshelf": (sys.executable, "child_modelshelf.py"),
            "modelstore": (str(self.ms_python), "child_modelstore.py"),
            "boto3": (sys.executable, "child_boto3.py"),
        }
        python, script = scripts[kind]
        return self.process(
            [python, str(BENCH / script), op, json.dumps(args)], cache=cache, parse="json", env=env
        )

    def process(
        self,
        argv: list[str],
        *,
        cache: Path | None = None,
        parse: str | None = None,
        rss: bool = True,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run a child; return its result plus wall time and peak RSS.

        ``parse="json"``: the child's last stdout line is a JSON object (the child scripts, which
        report their own peak RSS, ``VmHWM``); ``"float"``: it is the child's own timing in
        seconds; ``None``: only wall time counts, and the peak RSS of a non-Python command comes
        from GNU ``time`` when installed. (``wait4``'s ``ru_maxrss`` is useless here: Linux keeps
        the pre-``exec`` RSS of the forked child, i.e. of this large parent.)
        """
        timed = rss and parse != "json" and Path("/usr/bin/time").exists()
        if timed:
            argv = ["/usr/bin/time", "-f", "BENCH_MAXRSS_KB %M", *argv]
        extra = env
        env = dict(self.base_env)
        env.update(extra or {})
        env["MODELSHELF_CACHE"] = str(cache or self.fresh_cache())
        # Start every measurement with no dirty pages left by the previous step (data generation,
        # another tool's writes): otherwise the kernel's write-back of those pages lands in
        # whichever measurement comes next.
        os.sync()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
            child.wait()
            wall = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = (
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
            )
        if child.returncode != 0:
            raise ChildFailed(
                f"{shlex.join(argv[:3])} exited with {child.returncode}:\n{stderr[-3000:]}"
            )
        result: dict[str, Any] = {}
        if parse == "json":
            result = json.loads(stdout.strip().splitlines()[-1])
        elif parse == "float":
            result["seconds"] = float(stdout.strip().splitlines()[-1])
        result.setdefault("seconds", wall)
        result["wall_seconds"] = wall
        if "vmhwm_mb" in result:
            result["peak_rss_mb"] = result.pop("vmhwm_mb")
        elif timed:
            marks = [line for line in stderr.splitlines() if line.startswith("BENCH_MAXRSS_KB ")]
            if marks:
                result["peak_rss_mb"] = int(marks[-1].split()[1]) / 1024
        return result

    def fresh_cache(self) -> Path:
        self.cache_counter += 1
        path = RUN / "caches" / f"c{self.cache_counter}"
        remove(path)
        return path

    def record(
        self,
        workload: str,
        case: str,
        tool: str,
        op: str,
        rep: int,
        result: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        run = {
            "workload": workload,
            "case": case,
            "tool": tool,
            "op": op,
            "rep": rep,
            **result,
            **extra,
        }
        self.runs.append(run)
        log(
            f"  w{workload} {case:<10} {tool:<10} {op:<12} rep {rep}: {result.get('seconds', 0):8.3f} s"
            f"  rss {result.get('peak_rss_mb', 0):6.0f} MB"
            + (f"  {result['requests']} req" if "requests" in result else "")
        )
        return run

    # --- S3 helpers ---

    def reset_s3(self) -> None:
        from modelshelf_s3.testing import reset_moto

        reset_moto(self.endpoint)
        self.s3.create_bucket(Bucket=BUCKET)

    def s3_size(self, prefix: str) -> int:
        total = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            total += sum(item["Size"] for item in page.get("Contents", []))
        return total

    def order(self, rep: int) -> list[str]:
        """Alternate which tool goes first, so neither always gets the warmer machine."""
        return ["modelshelf", "modelstore"] if rep % 2 == 0 else ["modelstore", "modelshelf"]


# --- warm-up -------------------------------------------------------------------------------------


def warm_up(bench: Bench) -> None:
    """Run every kind of child once, unmeasured, so bytecode caches exist for both tools."""
    data, stores, dest = RUN / "data", RUN / "stores", RUN / "dest"
    remove(data, stores, dest)
    write_random(data / "model" / "weights.bin", 1 << 16)
    (data / "model" / "config.json").write_text("{}")
    bench.reset_s3()
    for backend in ("local", "s3"):
        url = str(stores / "shelf") if backend == "local" else f"s3://{BUCKET}/shelf"
        store = _ms_store(backend, stores)
        bench.child(
            "modelshelf", "upload", {"url": url, "name": "warm", "path": str(data / "model")}
        )
        bench.child(
            "modelshelf", "download", {"url": url, "ref": "warm:1", "dest": str(dest / "a")}
        )
        bench.child("modelshelf", "load", {"url": url, "ref": "warm:1"})
        bench.child("modelshelf", "versions", {"url": url, "name": "warm"})
        bench.child(
            "modelstore",
            "upload",
            {"store": store, "domain": "warm", "model_id": "v1", "path": str(data / "model")},
        )
        bench.child(
            "modelstore",
            "download",
            {"store": store, "domain": "warm", "model_id": "v1", "dest": str(dest / "b")},
        )
        bench.child("modelstore", "list", {"store": store, "domain": "warm"})
    bench.child(
        "boto3",
        "upload",
        {"bucket": BUCKET, "key": "warm", "path": str(data / "model" / "weights.bin")},
    )
    bench.child("boto3", "download", {"bucket": BUCKET, "key": "warm", "dest": str(dest / "c")})
    bench.process(
        [sys.executable, "-c", f"import modelshelf; modelshelf.open({str(stores / 'w6')!r})"]
    )
    bench.process(
        [str(Path(sys.executable).parent / "modelshelf"), "--help"]
        if (Path(sys.executable).parent / "modelshelf").exists()
        else [sys.executable, "-m", "modelshelf", "--help"]
    )
    bench.process([str(bench.ms_python), "-m", "modelstore", "--help"])
    remove(data, stores, dest, RUN / "caches")


# --- workloads 1, 2, 4, 5: one model through each tool, on one backend -----------------------


def transfer_suite(bench: Bench, backend: str) -> None:
    """Upload (w1/w2), download, re-upload with only the config changed (w4), load twice (w5).

    The model is a directory: ``weights.bin`` (random, ``size_mb``) and a small ``config.json``.
    Each tool starts every repetition on an empty store and a cold cache.
    """
    workload = "1" if backend == "local" else "2"
    size = bench.params["size_mb"] * MiB
    data = RUN / "data"
    model = data / "model"
    write_random(model / "weights.bin", size)
    config = model / "config.json"
    stores = RUN / "stores"
    dest = RUN / "dest"
    shelf_url = str(stores / "shelf") if backend == "local" else f"s3://{BUCKET}/shelf"

    def store_size(tool: str) -> int:
        if backend == "local":
            return tree_size(stores / ("shelf" if tool == "modelshelf" else "modelstore"))
        return bench.s3_size("shelf/" if tool == "modelshelf" else "modelstore/")

    for rep in range(bench.params["repeat"]):
        # The limit: cp (local) or raw boto3 (S3) of the weights file.
        remove(stores, dest)
        if backend == "local":
            (stores / "limit").mkdir(parents=True)
            r = bench.process(
                ["cp", str(model / "weights.bin"), str(stores / "limit" / "weights.bin")]
            )
            bench.record(workload, backend, "limit", "upload", rep, r, label="cp")
            remove(stores / "limit" / "weights.bin")
            r = bench.process(
                [
                    "sh",
                    "-c",
                    'cp "$0" "$1" && sync "$1"',
                    str(model / "weights.bin"),
                    str(stores / "limit" / "weights.bin"),
                ]
            )
            bench.record(workload, backend, "limit", "upload_fsync", rep, r, label="cp + sync FILE")
            # sha256 alone (OpenSSL through hashlib, as modelshelf uses): a content-addressed
            # store must hash every byte, so this bounds how close to `cp` an upload can get.
            r = bench.process(
                [sys.executable, "-c", _HASH_SNIPPET, str(model / "weights.bin")], parse="float"
            )
            bench.record(
                workload, backend, "limit", "hash", rep, r, label="sha256 (hashlib.file_digest)"
            )
            # The floor of a one-read upload in user space: read once, hash and write each chunk,
            # fsync. On a machine whose page cache is shared with other work, writing from user
            # space can cost far more than hashing; this row shows by how much, side by side.
            r = bench.process(
                [
                    sys.executable,
                    "-c",
                    _HASH_COPY_SNIPPET,
                    str(model / "weights.bin"),
                    str(stores / "limit" / "copied.bin"),
                    "fsync",
                ],
                parse="float",
            )
            bench.record(
                workload,
                backend,
                "limit",
                "hash_copy",
                rep,
                r,
                label="read once, sha256 and write, fsync (Python)",
            )
            remove(stores / "limit" / "copied.bin")
            # The floor of a verified download in user space: read the stored file once, hash
            # and write each chunk to the destination (no fsync: a download is not a commit).
            r = bench.process(
                [
                    sys.executable,
                    "-c",
                    _HASH_COPY_SNIPPET,
                    str(stores / "limit" / "weights.bin"),
                    str(stores / "limit" / "written.bin"),
                    "no-fsync",
                ],
                parse="float",
            )
            bench.record(
                workload,
                backend,
                "limit",
                "hash_write",
                rep,
                r,
                label="read once, sha256 and write (Python)",
            )
            remove(stores / "limit" / "written.bin")
            dest.mkdir(parents=True)
            r = bench.process(
                ["cp", str(stores / "limit" / "weights.bin"), str(dest / "weights.bin")]
            )
            bench.record(workload, backend, "limit", "download", rep, r, label="cp")
        else:
            bench.reset_s3()
            r = bench.child(
                "boto3",
                "upload",
                {"bucket": BUCKET, "key": "limit/weights.bin", "path": str(model / "weights.bin")},
            )
            bench.record(workload, backend, "limit", "upload", rep, r, label="boto3 upload_file")
            r = bench.child(
                "boto3",
                "download_stream",
                {"bucket": BUCKET, "key": "limit/weights.bin", "dest": str(dest / "weights.bin")},
            )
            bench.record(
                workload, backend, "limit", "download", rep, r, label="boto3 get_object, streamed"
            )
            remove(dest)
            if rep == 0:
                # download_file (parallel ranged GETs) is pathological on moto, which reads the whole
                # object for every ranged GET: measured once, as evidence, not as the floor.
                r = bench.child(
                    "boto3",
                    "download",
                    {
                        "bucket": BUCKET,
                        "key": "limit/weights.bin",
                        "dest": str(dest / "weights.bin"),
                    },
                )
                bench.record(
                    workload, backend, "limit", "download_file", rep, r, label="boto3 download_file"
                )
        remove(stores, dest)

        for tool in bench.order(rep):
            if backend == "s3":
                bench.reset_s3()
            remove(stores, dest)
            config.write_text('{"learning_rate": 0.1, "layers": 12}\n')
            if tool == "modelshelf":
                r = bench.child(
                    "modelshelf", "upload", {"url": shelf_url, "name": "model", "path": str(model)}
                )
            else:
                r = bench.child(
                    "modelstore",
                    "upload",
                    {
                        "store": _ms_store(backend, stores),
                        "domain": "model",
                        "model_id": "v1",
                        "path": str(model),
                    },
                )
            bench.record(workload, backend, tool, "upload", rep, r)

            if tool == "modelshelf":
                r = bench.child(
                    "modelshelf",
                    "download",
                    {"url": shelf_url, "ref": "model:1", "dest": str(dest)},
                )
            else:
                r = bench.child(
                    "modelstore",
                    "download",
                    {
                        "store": _ms_store(backend, stores),
                        "domain": "model",
                        "model_id": "v1",
                        "dest": str(dest),
                    },
                )
            bench.record(workload, backend, tool, "download", rep, r)
            remove(dest, RUN / "caches")
            if tool == "modelshelf":
                # What download did before it left the cache alone: a cache copy in the same pass.
                r = bench.child(
                    "modelshelf",
                    "download",
                    {"url": shelf_url, "ref": "model:1", "dest": str(dest), "keep_cache": True},
                )
                bench.record(workload, backend, tool, "download_keep_cache", rep, r)
                remove(dest, RUN / "caches")
            if tool == "modelshelf" and backend == "local":
                r = bench.child(
                    "modelshelf",
                    "copy",
                    {"url": shelf_url, "to": str(stores / "copy"), "ref": "model:1"},
                )
                bench.record(workload, backend, tool, "copy", rep, r)
                remove(stores / "copy", RUN / "caches")
            if backend == "s3" and tool == "modelshelf" and rep == 0:
                # Parallel ranged GETs (the default for blobs of 64 MiB and more): once, as evidence.
                r = bench.child(
                    "modelshelf",
                    "download",
                    {"url": shelf_url, "ref": "model:1", "dest": str(dest)},
                    env={"MODELSHELF_RANGE_WORKERS": "4"},
                )
                bench.record(
                    workload, backend, tool, "download_ranges", rep, r, label="4 parallel ranges"
                )
                remove(dest, RUN / "caches")

            # Workload 4: the same weights, a changed config.
            config.write_text('{"learning_rate": 0.05, "layers": 12}\n')
            before = store_size(tool)
            if tool == "modelshelf":
                r = bench.child(
                    "modelshelf", "upload", {"url": shelf_url, "name": "model", "path": str(model)}
                )
            else:
                r = bench.child(
                    "modelstore",
                    "upload",
                    {
                        "store": _ms_store(backend, stores),
                        "domain": "model",
                        "model_id": "v2",
                        "path": str(model),
                    },
                )
            bench.record(
                "4", backend, tool, "reupload", rep, r, store_growth_bytes=store_size(tool) - before
            )

            # Workload 5: load the new version twice, in fresh processes sharing one cache.
            cache = bench.fresh_cache()
            # modelstore has no cache: its first load is the download measured above, so only its
            # second one is run again (a 1 GiB download from moto takes it over a minute).
            for attempt in (1, 2) if tool == "modelshelf" else (2,):
                if tool == "modelshelf":
                    r = bench.child(
                        "modelshelf", "load", {"url": shelf_url, "ref": "model:2"}, cache=cache
                    )
                else:
                    # modelstore has no cache and cannot load a model_file into memory: its load is
                    # download + deserialise, so the download is what it reads from the store.
                    r = bench.child(
                        "modelstore",
                        "download",
                        {
                            "store": _ms_store(backend, stores),
                            "domain": "model",
                            "model_id": "v2",
                            "dest": str(dest / f"load{attempt}"),
                        },
                    )
                bench.record("5", backend, tool, f"load{attempt}", rep, r)
            remove(dest, RUN / "caches")
        remove(stores, dest)
    remove(data, stores, dest, RUN / "caches")


_HASH_SNIPPET = (
    "import hashlib, sys, time\n"
    "t = time.perf_counter()\n"
    "with open(sys.argv[1], 'rb') as f: hashlib.file_digest(f, 'sha256')\n"
    "print(time.perf_counter() - t)"
)
# The user-space floor of a one-read copy: read once, hash and write each chunk; with "fsync" as
# the third argument, fsync at the end (an upload's floor), else not (a download's).
_HASH_COPY_SNIPPET = (
    "import hashlib, os, sys, time\n"
    "t = time.perf_counter()\n"
    "h = hashlib.sha256()\n"
    "with open(sys.argv[1], 'rb') as src, open(sys.argv[2], 'wb') as dst:\n"
    "    while chunk := src.read(1 << 20):\n"
    "        h.update(chunk)\n"
    "        dst.write(chunk)\n"
    "    if sys.argv[3] == 'fsync':\n"
    "        dst.flush()\n"
    "        os.fsync(dst.fileno())\n"
    "print(time.perf_counter() - t)"
)


def _ms_store(backend: str, stores: Path) -> dict[str, str]:
    if backend == "local":
        return {"root": str(stores / "modelstore")}
    return {"bucket": BUCKET, "prefix": "modelstore"}


# --- workload 3: list versions -----------------------------------------------------------------


def list_versions(bench: Bench) -> None:
    count = bench.params["versions"]
    stores = RUN / "stores"
    remove(stores)
    bench.reset_s3()
    for backend in ("local", "s3"):
        shelf_url = str(stores / "shelf") if backend == "local" else f"s3://{BUCKET}/shelf"
        log(f"  w3 populating {count} versions per tool on {backend} (setup, not measured against)")
        r = bench.child(
            "modelshelf",
            "populate",
            {
                "url": shelf_url,
                "name": "listed",
                "count": count,
                "scratch": str(RUN / "scratch-shelf"),
            },
        )
        bench.record("3", backend, "modelshelf", "populate", 0, r)
        r = bench.child(
            "modelstore",
            "populate",
            {
                "store": _ms_store(backend, stores),
                "domain": "listed",
                "count": count,
                "scratch": str(RUN / "scratch-ms"),
            },
        )
        bench.record("3", backend, "modelstore", "populate", 0, r)
        # The first full listing of a shelf without version indexes reads every manifest and
        # writes the indexes (on object stores); the cold runs below are the ones after it.
        r = bench.child(
            "modelshelf",
            "versions",
            {"url": shelf_url, "name": "listed"},
            cache=bench.fresh_cache(),
        )
        _check_count(r, count, "modelshelf")
        bench.record("3", backend, "modelshelf", "list_first", 0, r)
        for rep in range(bench.params["repeat"]):
            for tool in bench.order(rep):
                if tool == "modelshelf":
                    r = bench.child(
                        "modelshelf",
                        "list_numbers",
                        {"url": shelf_url, "name": "listed"},
                        cache=bench.fresh_cache(),
                    )
                    _check_count(r, count, "modelshelf")
                    bench.record("3", backend, tool, "list_numbers", rep, r)
                    cache = bench.fresh_cache()
                    for op in ("list_cold", "list_warm"):
                        r = bench.child(
                            "modelshelf",
                            "versions",
                            {"url": shelf_url, "name": "listed"},
                            cache=cache,
                        )
                        _check_count(r, count, "modelshelf")
                        bench.record("3", backend, tool, op, rep, r)
                else:
                    r = bench.child(
                        "modelstore",
                        "list",
                        {"store": _ms_store(backend, stores), "domain": "listed"},
                    )
                    _check_count(r, count, "modelstore")
                    bench.record("3", backend, tool, "list", rep, r)
            remove(RUN / "caches")
    remove(stores, RUN / "scratch-shelf", RUN / "scratch-ms")


def _check_count(result: dict[str, Any], expected: int, tool: str) -> None:
    if result.get("count") != expected:
        raise RuntimeError(f"{tool} listed {result.get('count')} versions, expected {expected}")


# --- workload 6: import and CLI start-up -----------------------------------------------------------


def import_time(bench: Bench) -> None:
    local = RUN / "stores" / "import-shelf"
    ms_root = RUN / "stores" / "import-ms"
    timer = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    bin_dir = Path(sys.executable).parent
    cli = (
        [str(bin_dir / "modelshelf")]
        if (bin_dir / "modelshelf").exists()
        else [sys.executable, "-m", "modelshelf"]
    )
    probes: dict[str, tuple[str, list[str], bool]] = {
        # name: (tool, argv, the child prints its own timing)
        "python_startup": ("python", [sys.executable, "-c", "pass"], False),
        "import": (
            "modelshelf",
            [sys.executable, "-c", timer.format(stmt="import modelshelf")],
            True,
        ),
        "import_open": (
            "modelshelf",
            [
                sys.executable,
                "-c",
                timer.format(stmt=f"import modelshelf; modelshelf.open({str(local)!r})"),
            ],
            True,
        ),
        "cli_help": ("modelshelf", [*cli, "--help"], False),
    }
    ms_probes: dict[str, tuple[str, list[str], bool]] = {
        "import": (
            "modelstore",
            [str(bench.ms_python), "-c", timer.format(stmt="import modelstore")],
            True,
        ),
        "import_open": (
            "modelstore",
            [
                str(bench.ms_python),
                "-c",
                timer.format(
                    stmt="from modelstore import ModelStore; "
                    f"ModelStore.from_file_system({str(ms_root)!r}, create_directory=True)"
                ),
            ],
            True,
        ),
        "cli_help": ("modelstore", [str(bench.ms_python), "-m", "modelstore", "--help"], False),
    }
    remove(local, ms_root)
    ms_root.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(bench.params["import_runs"]):
        groups = [probes, ms_probes] if rep % 2 == 0 else [ms_probes, probes]
        for group in groups:
            for op, (tool, argv, prints) in group.items():
                r = bench.process(argv, parse="float" if prints else None, rss=False)
                if not prints:
                    r["seconds"] = r["wall_seconds"]
                bench.record("6", "local", tool, op, rep, r)
    remove(local, ms_root)


# --- workload 7: peak RSS as size grows ----------------------------------------------------------


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(bench: Bench) -> None:
    stores, dest, data = RUN / "stores", RUN / "dest", RUN / "data"
    for size_mb in bench.params["rss_sizes_mb"]:
        size = size_mb * MiB
        reps = bench.params["repeat"] if size_mb <= 1024 else 1
        for backend in ("local", "s3"):
            case = f"{backend}-{size_mb}MB"
            if backend == "s3" and mem_available() < 3 * size + 4 * (1 << 30):
                # moto keeps a whole object (and, while completing a multipart upload, its parts)
                # in its own memory; do not push a shared machine into swap for a number about the
                # client's memory.
                bench.runs.append(
                    {
                        "workload": "7",
                        "case": case,
                        "tool": "modelshelf",
                        "op": "skipped",
                        "rep": 0,
                        "reason": f"MemAvailable {mem_available() >> 30} GiB too low",
                    }
                )
                log(f"  w7 {case} skipped: not enough free memory for moto")
                continue
            url = str(stores / "shelf") if backend == "local" else f"s3://{BUCKET}/shelf"
            for rep in range(reps):
                remove(stores, dest, data)
                write_random(data / "weights.bin", size)
                if backend == "s3":
                    bench.reset_s3()
                    r = bench.child(
                        "boto3",
                        "upload",
                        {"bucket": BUCKET, "key": "limit/w", "path": str(data / "weights.bin")},
                    )
                    bench.record("7", case, "limit", "upload", rep, r, size_mb=size_mb)
                    r = bench.child(
                        "boto3",
                        "download_stream",
                        {"bucket": BUCKET, "key": "limit/w", "dest": str(dest / "w.bin")},
                    )
                    bench.record("7", case, "limit", "download", rep, r, size_mb=size_mb)
                    bench.reset_s3()
                else:
                    (stores / "limit").mkdir(parents=True)
                    r = bench.process(
                        ["cp", str(data / "weights.bin"), str(stores / "limit" / "w.bin")]
                    )
                    bench.record("7", case, "limit", "upload", rep, r, size_mb=size_mb)
                remove(dest, stores / "limit")
                r = bench.child(
                    "modelshelf",
                    "upload",
                    {"url": url, "name": "big", "path": str(data / "weights.bin")},
                )
                bench.record("7", case, "modelshelf", "upload", rep, r, size_mb=size_mb)
                remove(data)  # keep at most two copies on disk at the largest size
                r = bench.child(
                    "modelshelf", "download", {"url": url, "ref": "big:1", "dest": str(dest)}
                )
                bench.record("7", case, "modelshelf", "download", rep, r, size_mb=size_mb)
                remove(dest, RUN / "caches", stores)
                if backend == "s3":
                    bench.reset_s3()
    remove(stores, dest, data, RUN / "caches")


# --- workload 8: many small files ------------------------------------------------------------------


def small_files(bench: Bench) -> None:
    count = bench.params["small_files"]
    data, stores, dest = RUN / "data", RUN / "stores", RUN / "dest"
    remove(data)
    tree = data / "tree"
    for index in range(count):
        # A tokenizer/checkpoint-like tree: 100 files per sub-directory, unique base names
        # (modelstore flattens extra files by base name).
        write_random(tree / f"part{index // 100:03d}" / f"f{index:05d}.bin", SMALL_FILE_BYTES)
    for backend in ("local", "s3"):
        url = str(stores / "shelf") if backend == "local" else f"s3://{BUCKET}/shelf"
        for rep in range(bench.params["repeat"]):
            remove(stores, dest)
            if backend == "local":
                stores.mkdir(parents=True)
                r = bench.process(["cp", "-r", str(tree), str(stores / "limit")])
                bench.record("8", backend, "limit", "upload", rep, r, label="cp -r")
                r = bench.process(["cp", "-r", str(stores / "limit"), str(dest)])
                bench.record("8", backend, "limit", "download", rep, r, label="cp -r")
            else:
                bench.reset_s3()
                r = bench.child(
                    "boto3", "upload_tree", {"bucket": BUCKET, "prefix": "limit", "path": str(tree)}
                )
                bench.record(
                    "8", backend, "limit", "upload", rep, r, label="boto3 put_object x8 threads"
                )
                r = bench.child(
                    "boto3",
                    "download_tree",
                    {"bucket": BUCKET, "prefix": "limit", "dest": str(dest)},
                )
                bench.record(
                    "8", backend, "limit", "download", rep, r, label="boto3 get_object x8 threads"
                )
            for tool in bench.order(rep):
                remove(stores, dest)
                if backend == "s3":
                    bench.reset_s3()
                if tool == "modelshelf":
                    r = bench.child(
                        "modelshelf", "upload", {"url": url, "name": "tree", "path": str(tree)}
                    )
                    bench.record("8", backend, tool, "upload", rep, r)
                    r = bench.child(
                        "modelshelf", "download", {"url": url, "ref": "tree:1", "dest": str(dest)}
                    )
                else:
                    store = _ms_store(backend, stores)
                    r = bench.child(
                        "modelstore",
                        "upload",
                        {"store": store, "domain": "tree", "model_id": "v1", "path": str(tree)},
                    )
                    bench.record("8", backend, tool, "upload", rep, r)
                    r = bench.child(
                        "modelstore",
                        "download",
                        {"store": store, "domain": "tree", "model_id": "v1", "dest": str(dest)},
                    )
                bench.record("8", backend, tool, "download", rep, r)
                remove(dest, RUN / "caches")
    remove(data, stores, dest, RUN / "caches")


# --- driver ------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median of every numeric metric per (workload, case, tool, op)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        key = f"{run['workload']}|{run['case']}|{run['tool']}|{run['op']}"
        groups.setdefault(key, []).append(run)
    medians: dict[str, dict[str, float]] = {}
    for key, members in groups.items():
        numeric = {
            k
            for m in members
            for k, v in m.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "rep"
        }
        medians[key] = {k: median([m[k] for m in members if k in m]) for k in sorted(numeric)}
        medians[key]["runs"] = len(members)
    return medians


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--smoke", action="store_true", help="tiny sizes, 2 reps (CI)")
    preset.add_argument("--full", action="store_true", help="GiB sizes and the 4 GiB memory run")
    parser.add_argument("--repeat", type=int, help="repetitions per measurement (default 3)")
    parser.add_argument(
        "--size-mb", type=int, help="size of the large model file in MiB (default 1024)"
    )
    parser.add_argument(
        "--versions", type=int, help="versions to list in workload 3 (default 1000)"
    )
    parser.add_argument("--files", type=int, help="small files in workload 8 (default 2000)")
    parser.add_argument("--only", help="comma-separated workload numbers, e.g. 1,3 (default all)")
    parser.add_argument(
        "--output",
        type=Path,
        help="write results JSON and report here instead of bench/results/ and docs/",
    )
    return parser.parse_args(argv)


def _run_workloads(
    results: dict[str, Any],
    results_path: Path,
    params: dict[str, Any],
    selected: list[str],
    ms_python: Path,
    moto_tmp: Path,
) -> None:
    from modelshelf_s3.testing import moto_server

    with moto_server(env={"TMPDIR": str(moto_tmp)}) as endpoint:
        bench = Bench(params, endpoint, ms_python)
        log("warm-up (unmeasured): every child once, to fill bytecode caches")
        warm_up(bench)
        steps: dict[str, Callable[[], None]] = {
            "1": lambda: transfer_suite(bench, "local"),
            "2": lambda: transfer_suite(bench, "s3"),
            "3": lambda: list_versions(bench),
            "6": lambda: import_time(bench),
            "7": lambda: peak_rss(bench),
            "8": lambda: small_files(bench),
        }
        # Workloads 4 and 5 are measured inside 1 and 2 (same model, same stores).
        to_run = [
            w for w in steps if w in selected or (w in ("1", "2") and ({"4", "5"} & set(selected)))
        ]
        for workload in to_run:
            log(f"workload {workload}: {WORKLOADS[workload]}")
            before = os.getloadavg()
            began = time.perf_counter()
            try:
                steps[workload]()
            except Exception as exc:  # keep the other workloads' numbers; report the failure
                results["errors"][workload] = "".join(traceback.format_exception(exc))[-4000:]
                log(f"workload {workload} FAILED: {exc}")
            results["load_average"][workload] = {
                "before": list(before),
                "after": list(os.getloadavg()),
                "seconds": time.perf_counter() - began,
            }
            results["runs"] = bench.runs
            results["medians"] = summarise(bench.runs)
            results_path.write_text(json.dumps(results, indent=1))


def _terminate(signum: int, _: Any) -> None:
    # Turn SIGTERM into an exception so the moto server and work files are cleaned up.
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    preset = "smoke" if args.smoke else "full" if args.full else "default"
    params = dict(PRESETS[preset])
    if args.size_mb:
        params["size_mb"] = args.size_mb
        if preset != "full":
            params["rss_sizes_mb"] = [max(1, args.size_mb // 4), args.size_mb]
    for name, value in (
        ("repeat", args.repeat),
        ("versions", args.versions),
        ("small_files", args.files),
    ):
        if value:
            params[name] = value
    selected = [w.strip() for w in args.only.split(",")] if args.only else list(WORKLOADS)
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        raise SystemExit(
            f"unknown workload(s) {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}"
        )

    WORK.mkdir(parents=True, exist_ok=True)
    ms_python = ensure_modelstore_venv()
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    if args.output:
        results_path = args.output / f"{stamp}.json"
        md_path, png_path = args.output / "benchmarks.md", args.output / "benchmarks.png"
    else:
        results_path = BENCH / "results" / f"{stamp}.json"
        md_path, png_path = ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "benchmarks.png"
    results_path.parent.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = {
        "schema": 1,
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "preset": preset,
        "params": params,
        "machine": machine_info(),
        "workloads_run": selected,
        "load_average": {},
        "errors": {},
    }
    log(f"modelshelf benchmarks ({preset}): {params}; results -> {results_path}")

    moto_tmp = RUN / "moto-tmp"
    remove(moto_tmp)
    moto_tmp.mkdir(parents=True)
    # moto spools objects to temporary files: keep them in bench/work, cleaned with it.
    try:
        _run_workloads(results, results_path, params, selected, ms_python, moto_tmp)
    finally:
        remove(RUN)

    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results.setdefault("runs", [])
    results["medians"] = summarise(results["runs"])
    results["targets"] = report.targets(results)
    results_path.write_text(json.dumps(results, indent=1))
    report.write_report(results, md_path, png_path, results_path)
    log(f"results: {results_path}")
    log(f"report:  {md_path} and {png_path}")
    for target in results["targets"]:
        state = "INFO  " if target["kind"] == "info" else "MET   " if target["met"] else "MISSED"
        log(f"  {state} {target['workload']}: {target['text']}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
