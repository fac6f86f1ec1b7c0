"""Trust on every backend (filesystem, S3 on moto, Azure on Azurite, GCS on fake-gcs-server):
retention keeps exactly what the policy says and loses nothing of uploads running during gc;
aliased versions never go; signatures survive copies to each cloud and back (docs/trust.md)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf.copying import copy
from modelshelf.records import AliasRule, RetentionRule

KINDS = ["file", "s3", "azure", "gcs"]
GRACE_0 = dt.timedelta(0)


def _file(folder: Path, tag: str, size: int = 2048) -> Path:
    path = folder / f"w-{tag}.bin"
    path.write_bytes((tag.encode() + b"|") * (size // (len(tag) + 1)))
    return path


def _numbers(shelf: Any, name: str) -> list[int]:
    return [v.version for v in shelf.versions(name)]


@pytest.mark.parametrize("kind", KINDS)
def test_retention_keeps_exactly_what_the_policy_says(
    make_backend: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    shelf = make_backend(kind).open(tmp_path / "cache")
    files = [_file(tmp_path, f"m{i}") for i in range(6)]
    for path in files:
        shelf.upload("m", path)
    for i in range(3):
        shelf.upload("n", _file(tmp_path, f"n{i}"))
    shelf.set_alias("m", "prod", 1)
    shelf.set_alias("m", "canary", 2)
    shelf.set_alias("m", "canary", 6)  # version 2 was aliased a moment ago: it stays too
    shelf.set_policy(retention=RetentionRule(keep_last=2, models=("m",)))
    dry = shelf.gc(grace=GRACE_0, dry_run=True)
    assert dry.retired == ("m:3", "m:4")
    assert dry.retired_bytes == files[2].stat().st_size + files[3].stat().st_size
    assert _numbers(shelf, "m") == [1, 2, 3, 4, 5, 6]
    report = shelf.gc(grace=GRACE_0)
    assert report.retired == ("m:3", "m:4")
    assert _numbers(shelf, "m") == [1, 2, 5, 6] and _numbers(shelf, "n") == [1, 2, 3]
    assert [e.action for e in shelf.history("m")].count("delete") == 2
    assert report.removed == ()  # their blobs wait for the grace period after the removal
    time.sleep(1.5)  # object stores tell modification times to the second: let a whole one pass
    later = shelf.gc(grace=GRACE_0)
    assert len(later.removed) == 2 and later.retired == ()
    assert shelf.verify() == []
    assert shelf.load("m@prod").read_bytes().startswith(b"m0|")


@pytest.mark.parametrize("kind", KINDS)
def test_uploads_during_gc_with_retention_lose_nothing(
    make_backend: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    backend = make_backend(kind)
    shelf = backend.open(tmp_path / "cache")
    doomed = [_file(tmp_path, f"old{i}") for i in range(4)]
    for path in doomed:
        shelf.upload("m", path)
    shelf.set_alias("m", "prod", 4)
    published: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def uploader(worker: int) -> None:
        own = backend.open(tmp_path / f"cache-{worker}")
        start.wait()
        try:
            for i in range(3):
                # Re-use the bytes of versions retention is removing: their blobs must survive.
                path = (
                    doomed[i % 3]
                    if i % 2 == 0
                    else _file(tmp_path / f"w{worker}", f"new{worker}-{i}")
                )
                version = own.upload("m", path)
                published.append((version.ref, path.read_bytes()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    (tmp_path / "w0").mkdir()
    (tmp_path / "w1").mkdir()
    threads = [threading.Thread(target=uploader, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    start.wait()
    report = shelf.gc(grace=GRACE_0, keep=RetentionRule(keep_last=1))
    for thread in threads:
        thread.join()
    assert errors == []
    assert "m:4" not in report.retired  # aliased
    assert set(report.retired) <= {"m:1", "m:2", "m:3"}
    # Free everything no manifest references, then every published version is whole.
    time.sleep(1.5)  # object stores tell modification times to the second: let a whole one pass
    shelf.gc(grace=GRACE_0)
    assert shelf.verify() == []
    for ref, data in published:
        assert shelf.load(ref).read_bytes() == data
    assert shelf.load("m@prod").read_bytes() == doomed[3].read_bytes()


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_signatures_survive_a_copy_to_the_cloud_and_back(
    make_backend: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    pytest.importorskip("modelshelf_sign")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from modelshelf_sign.signing import sign

    key = ec.generate_private_key(ec.SECP384R1())
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    local = modelshelf.open(str(tmp_path / "local"), cache=tmp_path / "cache-local")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 5000)
    (model / "sub" / "config.json").write_text("{}")
    version = local.upload("team/m", model, metrics={"auc": 0.9})
    sign(local, version.ref, key=private)

    cloud = make_backend(kind).open(tmp_path / "cache-cloud")
    report = copy(local, cloud, "team/m")
    assert report.attached == 1
    assert cloud.verify_signatures("team/m:1", [str(public)]) == []
    cloud.set_policy(aliases=[AliasRule("prod", signed_by=(public.read_text(),))])
    cloud.set_alias("team/m", "prod", 1)
    assert (
        cloud.load("team/m@prod", require_signature=[str(public)]) / "weights.bin"
    ).read_bytes() == b"w" * 5000

    back = modelshelf.open(str(tmp_path / "back"), cache=tmp_path / "cache-back")
    assert copy(cloud, back, "team/m").attached == 1
    assert back.verify_signatures("team/m:1", [str(public)]) == []
    assert copy(cloud, back, "team/m").attached == 0  # nothing new the second time
