"""A model travels filesystem -> S3 -> Azure -> filesystem with every byte intact, over real servers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import modelshelf
from modelshelf.copying import copy


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_through_s3_and_azure(
    tmp_path: Path, s3_url: str, moto_endpoint: str, azure_url: str, azurite_connection_string: str
) -> None:
    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "weights.bin").write_bytes(os.urandom(6 * 1024 * 1024 + 3))  # crosses multipart sizes
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    originals = {
        p.relative_to(model).as_posix(): digest(p) for p in model.rglob("*") if p.is_file()
    }

    local = modelshelf.open(str(tmp_path / "local"), cache=tmp_path / "cache-local")
    local.upload("team/bert", model, metrics={"f1": 0.8})
    local.upload("team/bert", model / "weights.bin")
    local.set_alias("team/bert", "prod", 1)

    s3 = modelshelf.open(s3_url, endpoint_url=moto_endpoint, cache=tmp_path / "cache-s3")
    azure = modelshelf.open(
        azure_url, connection_string=azurite_connection_string, cache=tmp_path / "cache-az"
    )
    back = modelshelf.open(str(tmp_path / "back"), cache=tmp_path / "cache-back")

    hops = [(local, s3), (s3, azure), (azure, back)]
    for source, target in hops:
        report = copy(source, target, "team/bert", aliases=True)
        assert len(report.copied) == 2 and report.aliases == {"team/bert@prod": 1}
        assert report.bytes_sent == sum(os.path.getsize(p) for p in model.rglob("*") if p.is_file())
        assert target.verify() == []

    out = back.download("team/bert@prod", tmp_path / "out")
    assert {
        p.relative_to(out).as_posix(): digest(p) for p in out.rglob("*") if p.is_file()
    } == originals
    final = back.get("team/bert:1")
    assert final.metrics == {"f1": 0.8}
    assert final.lineage.source["shelf"] == azure.url
    assert final.lineage.source["origin"]["name"] == "team/bert"

    # A second copy along every hop, and back to the start, transfers nothing.
    for source, target in [*hops, (back, local)]:
        again = copy(source, target, "team/bert", aliases=True)
        assert again.copied == {} and again.bytes_sent == 0 and len(again.present) == 2
    assert [v.version for v in local.versions("team/bert")] == [1, 2]
