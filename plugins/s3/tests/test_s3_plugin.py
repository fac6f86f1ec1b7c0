"""The plugin as users meet it: discovery, lazy import, and a shelf on S3 end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import modelshelf
from modelshelf.plugins import get_registry


def test_import_does_not_import_boto3() -> None:
    code = (
        "import sys, modelshelf_s3, modelshelf;"
        "from modelshelf.plugins import get_registry;"
        "get_registry().storages();"  # resolving the scheme must not import boto3 either
        "bad = [m for m in ('boto3', 'botocore', 's3transfer') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_scheme_is_registered_by_this_distribution() -> None:
    entry = get_registry().storages()["s3"]
    assert entry.distribution == "modelshelf-s3"
    info = next(i for i in get_registry().infos() if i.name == "s3")
    assert info.status == "loaded" and info.schemes == ["s3"]


def test_shelf_on_s3_end_to_end(bucket: str, tmp_path: Path, s3_client: object) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 50_000)
    url = f"s3://{bucket}/registry/prod?max_concurrency=4"
    shelf = modelshelf.open(url, cache=tmp_path / "cache")
    assert type(shelf.storage).__name__ == "S3Storage"
    v1 = shelf.upload("fraud/detector", weights, metrics={"auc": 0.8})
    weights.write_bytes(b"\x02" * 10)
    v2 = shelf.upload("fraud/detector", weights, tags={"stage": "candidate"})
    assert [v.version for v in shelf.versions("fraud/detector")] == [1, 2]
    assert (v1.version, v2.version) == (1, 2)

    # A second, independent client (another machine, in effect) sees the same registry.
    other = modelshelf.open(url, cache=tmp_path / "other-cache")
    other.set_alias("fraud/detector", "prod", 1)
    loaded = Path(shelf.load("fraud/detector@prod"))
    assert loaded.read_bytes() == b"\x00\x01" * 50_000
    assert shelf.get("fraud/detector").tags == {"stage": "candidate"}

    # Everything lives below the prefix, in the layout the design describes.
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]  # type: ignore[attr-defined]
    assert all(k.startswith("registry/prod/") for k in keys)
    assert "registry/prod/models/fraud/detector/_versions/0000000001.json" in keys
    assert any(k.startswith("registry/prod/blobs/sha256/") for k in keys)
    shelf.close()
    other.close()
