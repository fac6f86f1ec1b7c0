"""Child processes of the reliability suite: ``python rel_worker.py`` with a JSON job on stdin.

Jobs:

* ``{"job": "upload_loop", ...}``: open the shelf, print ``READY``, then upload distinct models
  forever, printing ``DONE <version>`` after each, until killed (the crash tests kill it -9).
* ``{"job": "writer", ...}``: upload ``count`` versions of one model, and after each move an alias
  to it; print one JSON line with the versions obtained (the concurrency tests).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_backends import Backend, write_model


def upload_loop(job: dict) -> None:
    backend = Backend.from_json(job["backend"])
    shelf = backend.open(job["cache"], **job.get("extra_options", {}))
    rng = random.Random(job["seed"])
    scratch = Path(job["scratch"])
    big = job.get("big_file", 0)
    print("READY", flush=True)
    i = 0
    while True:
        # Fresh content every time, so that every upload has blobs of its own to write.
        folder = scratch / f"u{i}"
        write_model(
            folder,
            rng,
            files=job.get("files", 4),
            max_size=job.get("max_size", 400_000),
            tag=f"{job['seed']}-{i}",
        )
        if big:
            (folder / "big.bin").write_bytes(rng.randbytes(big))
        version = shelf.upload(job["name"], folder, metadata={"seed": job["seed"], "i": i})
        print(f"DONE {version.version}", flush=True)
        i += 1


def writer(job: dict) -> None:
    backend = Backend.from_json(job["backend"])
    shelf = backend.open(job["cache"])
    scratch = Path(job["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    got = []
    for i in range(job["count"]):
        path = scratch / f"w{job['worker']}-{i}.bin"
        path.write_bytes(f"worker {job['worker']} upload {i} pid {os.getpid()}\n".encode())
        version = shelf.upload(job["name"], path, metadata={"worker": job["worker"], "i": i})
        shelf.set_alias(job["name"], job["alias"], version.version)
        got.append(version.version)
    shelf.close()
    print(json.dumps({"worker": job["worker"], "versions": got}), flush=True)


def soak(job: dict) -> None:
    """Random uploads, ``gc`` with no grace period, deletes and alias moves; one JSON line per
    operation saying what was reported (a success, or a one-line modelshelf error)."""
    import datetime as dt

    from modelshelf.errors import ModelshelfError

    backend = Backend.from_json(job["backend"])
    shelf = backend.open(job["cache"])
    shelf.lease_poll = 0.02
    rng = random.Random(job["seed"])
    scratch = Path(job["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    name = job["name"]
    # A small shared pool of contents, so that uploads keep re-using blobs that deletes orphaned.
    pool = [random.Random(f"pool-{k}").randbytes(3000 + k) for k in range(job["pool"])]
    for i in range(job["ops"]):
        op = rng.choices(["upload", "gc", "delete", "alias"], weights=[5, 2, 2, 2])[0]
        line: dict = {"op": op, "worker": job["worker"], "i": i}
        try:
            if op == "upload":
                folder = scratch / f"w{job['worker']}-{i}"
                folder.mkdir()
                chosen = rng.sample(range(len(pool)), k=rng.randint(1, 3))
                for k in chosen:
                    (folder / f"p{k}.bin").write_bytes(pool[k])
                if rng.random() < 0.3:
                    (folder / "own.bin").write_bytes(rng.randbytes(2000))
                version = shelf.upload(name, folder)
                line.update(
                    version=version.version, files={f.path: f.sha256 for f in version.files}
                )
            elif op == "gc":
                report = shelf.gc(grace=dt.timedelta(0))
                line.update(removed=len(report.removed))
            else:
                listed = [v.version for v in shelf.list_versions(name)] if shelf.models() else []
                if not listed:
                    line.update(skipped=True)
                else:
                    target = rng.choice(listed)
                    line.update(version=target)
                    if op == "delete":
                        shelf.delete(f"{name}:{target}", force=rng.random() < 0.5)
                    else:
                        shelf.set_alias(name, rng.choice(["prod", "staging"]), target)
            line.update(ok=True)
        except ModelshelfError as exc:
            line.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            line.update(ok=False, raw=f"{type(exc).__name__}: {exc!r}")
        print(json.dumps(line), flush=True)
    shelf.close()


if __name__ == "__main__":
    job = json.loads(sys.stdin.read())
    {"upload_loop": upload_loop, "writer": writer, "soak": soak}[job["job"]](job)
