"""One modelstore 0.0.82 operation in a fresh process, timed; prints its result as JSON.

    bench/work/venv-modelstore/bin/python bench/child_modelstore.py upload '{...}'

Runs inside the modelstore virtual environment (modelstore==0.0.82, scikit-learn, boto3), never
in the modelshelf one. Arguments: ``store`` is ``{"root": dir}`` for a file-system store or
``{"bucket": b, "prefix": p}`` for S3 (the endpoint comes from ``AWS_ENDPOINT_URL``, which
boto3 >= 1.28 honours for the plain ``boto3.client("s3", region_name=...)`` modelstore builds).

modelstore cannot store a directory as a model (its issue #256) and its ``model_file`` manager
cannot ``load`` into memory, so: a directory is uploaded as ``model=<first file>`` plus
``extra_files=<the rest>`` (flattened, as modelstore stores extras), and "load" is modelstore's
``download`` (what its ``load`` runs before deserialising).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from _childlib import RequestCounter, main, measured


def _open(args: dict[str, Any]) -> tuple[Any, RequestCounter | None, dict[str, Any]]:
    store_args = args["store"]
    counter = None
    if "bucket" in store_args:
        counter = RequestCounter()
        counter.install()
    result: dict[str, Any] = {}
    started = time.perf_counter()
    from modelstore import ModelStore

    if "bucket" in store_args:
        store = ModelStore.from_aws_s3(
            bucket_name=store_args["bucket"], region="us-east-1", root_prefix=store_args["prefix"]
        )
    else:
        # modelstore creates the root but refuses a root whose parent does not exist.
        Path(store_args["root"]).parent.mkdir(parents=True, exist_ok=True)
        store = ModelStore.from_file_system(
            root_directory=store_args["root"], create_directory=True
        )
    result["open_seconds"] = time.perf_counter() - started
    return store, counter, result


def _upload_kwargs(path: str) -> dict[str, Any]:
    source = Path(path)
    if source.is_file():
        return {"model": str(source)}
    files = sorted(str(p) for p in source.rglob("*") if p.is_file())
    # The largest file is the model; everything else rides along as extra files.
    files.sort(key=lambda p: -os.stat(p).st_size)
    return {"model": files[0], "extra_files": files[1:]}


def upload(args: dict[str, Any]) -> dict[str, Any]:
    store, counter, result = _open(args)
    kwargs = _upload_kwargs(args["path"])
    with measured(result, counter):
        store.upload(args["domain"], model_id=args["model_id"], **kwargs)
    return result


def download(args: dict[str, Any]) -> dict[str, Any]:
    store, counter, result = _open(args)
    Path(args["dest"]).mkdir(parents=True, exist_ok=True)
    with measured(result, counter):
        store.download(args["dest"], args["domain"], args["model_id"])
    return result


def list_models(args: dict[str, Any]) -> dict[str, Any]:
    store, counter, result = _open(args)
    with measured(result, counter):
        found = store.list_models(args["domain"])
    result["count"] = len(found)
    return result


def populate(args: dict[str, Any]) -> dict[str, Any]:
    """Upload ``count`` versions of a small, changing file (setup for the listing workload)."""
    store, counter, result = _open(args)
    work = Path(args["scratch"])
    work.mkdir(parents=True, exist_ok=True)
    with measured(result, counter):
        for number in range(args["count"]):
            file = work / "config.json"
            file.write_text(f'{{"version": {number}, "pad": "{"x" * 200}"}}\n')
            store.upload(args["domain"], model_id=f"v{number + 1}", model=str(file))
    return result


if __name__ == "__main__":
    main({"upload": upload, "download": download, "list": list_models, "populate": populate})
