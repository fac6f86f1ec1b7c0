"""The S3 physical limit: raw boto3 transfers in a fresh process, timed; prints JSON.

    python bench/child_boto3.py upload '{"bucket": "b", "key": "k", "path": "..."}'

Plain ``boto3.client("s3").upload_file`` / ``download_file`` with boto3's default managed
transfer settings (multipart, 10 threads), against the same server (``AWS_ENDPOINT_URL``) the two
tools use. ``upload_tree`` / ``download_tree`` put or get every file of a directory with 8
threads (modelshelf's default parallelism), one request per file: the floor for many small files.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _childlib import RequestCounter, main, measured


def _client() -> tuple[Any, RequestCounter, dict[str, Any]]:
    counter = RequestCounter()
    counter.install()
    started = time.perf_counter()
    import boto3

    client = boto3.client("s3")
    return client, counter, {"open_seconds": time.perf_counter() - started}


def upload(args: dict[str, Any]) -> dict[str, Any]:
    client, counter, result = _client()
    with measured(result, counter):
        client.upload_file(args["path"], args["bucket"], args["key"])
    return result


def download(args: dict[str, Any]) -> dict[str, Any]:
    client, counter, result = _client()
    Path(args["dest"]).parent.mkdir(parents=True, exist_ok=True)
    with measured(result, counter):
        client.download_file(args["bucket"], args["key"], args["dest"])
    return result


def download_stream(args: dict[str, Any]) -> dict[str, Any]:
    """One GetObject streamed to a file in 1 MiB chunks: the floor for a download from moto.

    ``download_file`` splits the object into ranged GETs, and moto answers every ranged GET by
    reading the whole object from its spool, so on moto it is many times slower than this.
    """
    client, counter, result = _client()
    Path(args["dest"]).parent.mkdir(parents=True, exist_ok=True)
    with measured(result, counter):
        body = client.get_object(Bucket=args["bucket"], Key=args["key"])["Body"]
        with open(args["dest"], "wb") as out:
            for chunk in body.iter_chunks(1 << 20):
                out.write(chunk)
    return result


def upload_tree(args: dict[str, Any]) -> dict[str, Any]:
    client, counter, result = _client()
    root = Path(args["path"])
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def put(path: Path) -> None:
        with open(path, "rb") as body:
            client.put_object(
                Bucket=args["bucket"],
                Key=f"{args['prefix']}/{path.relative_to(root).as_posix()}",
                Body=body,
            )

    with measured(result, counter), ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    return result


def download_tree(args: dict[str, Any]) -> dict[str, Any]:
    client, counter, result = _client()
    dest = Path(args["dest"])

    def get(key: str) -> None:
        target = dest / key[len(args["prefix"]) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=args["bucket"], Key=key)["Body"]
        with open(target, "wb") as out:
            for chunk in body.iter_chunks(1 << 20):
                out.write(chunk)

    with measured(result, counter):
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=args["bucket"], Prefix=args["prefix"] + "/"
            )
            for item in page.get("Contents", [])
        ]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(get, keys))
    result["count"] = len(keys)
    return result


if __name__ == "__main__":
    main(
        {
            "upload": upload,
            "download": download,
            "download_stream": download_stream,
            "upload_tree": upload_tree,
            "download_tree": download_tree,
        }
    )
