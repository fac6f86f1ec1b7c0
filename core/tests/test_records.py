"""Records and their JSON format, pinned by golden files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import attrs
import pytest
from modelshelf import convert
from modelshelf.errors import InvalidRecord, SchemaTooNew
from modelshelf.records import (
    PACKED_SCHEMA,
    SCHEMA,
    Alias,
    Blob,
    Event,
    FileEntry,
    FrameworkInfo,
    GitInfo,
    Lineage,
    ModelVersion,
    SerializerInfo,
    ShelfMarker,
    Tombstone,
)

GOLDEN = Path(__file__).parent / "golden"
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)

VERSION = ModelVersion(
    name="team/churn",
    version=7,
    created_at=WHEN,
    created_by="ana@host",
    serializer=SerializerInfo(
        "sklearn-skops", "modelshelf-sklearn", "0.1.0", "skops", True, {"untrusted_types": []}
    ),
    framework=FrameworkInfo("sklearn", "1.5.2"),
    files=(FileEntry("model.skops", "a" * 64, 1234), FileEntry("extra/notes.txt", "b" * 64, 5)),
    total_size=1239,
    lineage=Lineage(
        "3.11.7", "Linux-x86_64", {"modelshelf": "0.1.0"}, GitInfo("c0ffee", "main", False)
    ),
    metadata={"owner": "ana"},
    metrics={"auc": 0.91},
    params={"C": 1.0},
    tags={"stage": "dev"},
    description="first try",
    signature={"inputs": [{"name": "x", "dtype": "float64", "shape": [None, 4]}]},
)
PACK = "d" * 64
#: Small files in a pack (two paths share one content, stored once), a large one as its own blob.
PACKED_VERSION = attrs.evolve(
    VERSION,
    files=(
        FileEntry("config/a.json", "b" * 64, 5, PACK, 0),
        FileEntry("config/b.json", "c" * 64, 7, PACK, 5),
        FileEntry("config/c.json", "b" * 64, 5, PACK, 0),
        FileEntry("model.skops", "a" * 64, 1234),
    ),
    total_size=1251,
    packs=(Blob(PACK, 12),),
    schema=PACKED_SCHEMA,
)
RECORDS = {
    "manifest_v1.json": (VERSION, ModelVersion),
    "manifest_packed_v2.json": (PACKED_VERSION, ModelVersion),
    "tombstone_v1.json": (Tombstone("team/churn", 8, WHEN, "bob@host"), Tombstone),
    "alias_v1.json": (Alias("team/churn", "prod", 7, WHEN, "ana@host", previous=6), Alias),
    "event_v1.json": (
        Event("team/churn", "alias_set", WHEN, "ana@host", version=7, alias="prod", previous=6),
        Event,
    ),
    "marker_v1.json": (ShelfMarker(1, WHEN), ShelfMarker),
}


@pytest.mark.parametrize("filename", sorted(RECORDS))
def test_golden_files_read_back_exactly(filename: str) -> None:
    record, cls = RECORDS[filename]
    data = (GOLDEN / filename).read_bytes()
    assert convert.from_json(data, cls, source=filename) == record


@pytest.mark.parametrize("filename", sorted(RECORDS))
def test_records_serialise_to_the_golden_bytes(filename: str) -> None:
    record, _ = RECORDS[filename]
    assert json.loads(convert.to_json(record)) == json.loads((GOLDEN / filename).read_bytes())


def test_manifest_kind_dispatch() -> None:
    assert isinstance(
        convert.manifest_from_json((GOLDEN / "tombstone_v1.json").read_bytes(), source="t"),
        Tombstone,
    )
    assert isinstance(
        convert.manifest_from_json((GOLDEN / "manifest_v1.json").read_bytes(), source="m"),
        ModelVersion,
    )


def test_newer_schema_is_refused_with_upgrade_hint() -> None:
    raw = json.loads((GOLDEN / "manifest_v1.json").read_bytes())
    raw["schema"] = SCHEMA + 1
    with pytest.raises(SchemaTooNew, match="pip install -U modelshelf"):
        convert.manifest_from_json(json.dumps(raw).encode(), source="models/x/_versions/1.json")


def test_only_manifests_with_packs_need_the_newer_schema() -> None:
    assert json.loads(convert.to_json(VERSION))["schema"] == 1
    assert json.loads(convert.to_json(PACKED_VERSION))["schema"] == PACKED_SCHEMA
    assert PACKED_VERSION.blobs() == (Blob("a" * 64, 1234), Blob(PACK, 12))


def test_a_release_before_packs_refuses_a_packed_manifest_with_upgrade_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Releases before packs read schema 1 only: a packed manifest is refused with the upgrade
    message (listings skip it with that warning, gc keeps every sha256 it mentions), never read
    as if its packed files had blobs of their own; manifests without packs still read."""
    monkeypatch.setattr(convert, "SCHEMA", 1)
    packed = (GOLDEN / "manifest_packed_v2.json").read_bytes()
    with pytest.raises(SchemaTooNew, match="pip install -U modelshelf"):
        convert.manifest_from_json(packed, source="models/x/_versions/1.json")
    assert convert.manifest_from_json((GOLDEN / "manifest_v1.json").read_bytes(), source="m")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(schema=1),
        lambda r: r.update(packs=[]),
        lambda r: r["packs"].append(dict(r["packs"][0])),
        lambda r: r["packs"][0].update(sha256="D" * 64),
        lambda r: r["packs"][0].update(size=-1),
        lambda r: r["files"][1].update(offset=6),
        lambda r: r["files"][1].update(offset=-1),
        lambda r: r["files"][1].update(offset=True),
        lambda r: r["files"][1].pop("offset"),
        lambda r: r["files"][1].update(pack="e" * 64),
        lambda r: r["files"][1].update(pack="nope"),
    ],
)
def test_malformed_packed_manifests_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads((GOLDEN / "manifest_packed_v2.json").read_bytes())
    mutate(raw)
    with pytest.raises(InvalidRecord) as info:
        convert.manifest_from_json(json.dumps(raw).encode(), source="models/x/_versions/1.json")
    assert "models/x/_versions/1.json" in str(info.value)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(version="seven"),
        lambda r: r.pop("files"),
        lambda r: r["files"].append({"path": "../escape", "sha256": "c" * 64, "size": 1}),
        lambda r: r["files"].append({"path": "ok", "sha256": "not-hex", "size": 1}),
        lambda r: r["files"].append({"path": "ok", "sha256": "c" * 64, "size": -1}),
        lambda r: r.update(created_at=12),
        lambda r: r.update(kind="mystery"),
        lambda r: r.update(schema="1"),
    ],
)
def test_malformed_manifests_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads((GOLDEN / "manifest_v1.json").read_bytes())
    mutate(raw)
    with pytest.raises(InvalidRecord) as info:
        convert.manifest_from_json(json.dumps(raw).encode(), source="models/x/_versions/1.json")
    assert "models/x/_versions/1.json" in str(info.value)


def test_not_json_and_huge_records_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        convert.parse_json(b"{nope", source="k")
    with pytest.raises(InvalidRecord, match="expected a JSON object"):
        convert.parse_json(b"[1]", source="k")
    with pytest.raises(InvalidRecord, match="limit"):
        convert.parse_json(b" " * (convert.MAX_RECORD_BYTES + 1), source="k")
