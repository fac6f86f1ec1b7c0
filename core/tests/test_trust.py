"""Trust in core: protected-alias policies (refused moves, bypassing writers caught by readers),
the ``modelshelf_check_version`` hook, retention in ``gc``, the pickle scan at upload, and records
attached to versions travelling with copies and bundles. See docs/trust.md."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import modelshelf
import pytest
from modelshelf import convert, layout
from modelshelf.copying import copy, export_bundle, import_bundle
from modelshelf.errors import FlaggedByScan, PolicyViolation, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.records import AliasRule, Policy, RetentionRule, ScanFinding, ScanVerdict, Tombstone
from modelshelf.scanning import scan_files
from modelshelf.serializers import SavedModel, Serializer
from modelshelf.shelf import Shelf

GOLDEN = Path(__file__).parent / "golden"
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def _upload(
    shelf: Shelf, tmp_path: Path, name: str, tag: str, **kwargs: Any
) -> modelshelf.ModelVersion:
    path = tmp_path / f"{name.replace('/', '_')}-{tag}.bin"
    path.write_bytes(f"{name} {tag}".encode() * 100)
    return shelf.upload(name, path, **kwargs)


# --- golden files of the new records ---------------------------------------------------------

POLICY = Policy(
    number=3,
    created_at=WHEN,
    created_by="ana@host",
    aliases=(
        AliasRule(
            "team/*@prod",
            signed_by=("sha256:" + "c" * 64,),
            min_metrics={"auc": 0.8},
            tags={"reviewed": "yes"},
        ),
    ),
    retention=RetentionRule(
        keep_last=5, keep_newer_than_days=90.0, keep_aliased=True, models=("team/*",)
    ),
)
SCAN = ScanVerdict(
    "modelshelf-pickletools/1", ("model.pkl",), (ScanFinding("model.pkl", ("posix.system",)),)
)


@pytest.mark.parametrize(
    ("filename", "record", "cls"),
    [
        ("policy_v1.json", POLICY, Policy),
        (
            "tombstone_blobs_v1.json",
            Tombstone("team/churn", 8, WHEN, "gc@host", blobs=("d" * 64,)),
            Tombstone,
        ),
    ],
)
def test_new_records_match_their_golden_files(filename: str, record: Any, cls: type) -> None:
    data = (GOLDEN / filename).read_bytes()
    assert convert.from_json(data, cls, source=filename) == record
    assert json.loads(convert.to_json(record)) == json.loads(data)


def test_a_manifest_with_a_scan_verdict_has_a_golden_file_and_old_manifests_keep_their_bytes() -> (
    None
):
    old = (GOLDEN / "manifest_v1.json").read_bytes()
    version = convert.manifest_from_json(old, source="old")
    assert version.scan is None and "scan" not in json.loads(convert.to_json(version))
    scanned = convert.manifest_from_json(
        (GOLDEN / "manifest_scan_v1.json").read_bytes(), source="new"
    )
    assert (
        scanned == attrs.evolve(version, scan=SCAN)
        and scanned.scan is not None
        and scanned.scan.dangerous
    )
    assert json.loads(convert.to_json(scanned)) == json.loads(
        (GOLDEN / "manifest_scan_v1.json").read_bytes()
    )


# --- protected aliases -----------------------------------------------------------------------


def test_set_alias_is_refused_when_the_policy_is_not_met(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    weak = _upload(local_shelf, tmp_path, "churn", "a", metrics={"auc": 0.7})
    strong = _upload(
        local_shelf, tmp_path, "churn", "b", metrics={"auc": 0.9}, tags={"reviewed": "yes"}
    )
    local_shelf.set_alias("churn", "prod", weak.version)  # no policy yet: anything goes
    local_shelf.set_policy(
        aliases=[AliasRule("prod", min_metrics={"auc": 0.8}, tags={"reviewed": "yes"})]
    )
    with pytest.raises(PolicyViolation) as info:
        local_shelf.set_alias("churn", "prod", weak.version)
    message = str(info.value)
    assert (
        "\n" not in message and "auc is 0.7 (needs >= 0.8)" in message and "reviewed=yes" in message
    )
    local_shelf.set_alias("churn", "prod", strong.version)
    local_shelf.set_alias("churn", "staging", weak.version)  # unprotected aliases stay free
    assert local_shelf.aliases("churn")["prod"].version == strong.version


def test_a_writer_bypassing_the_client_is_caught_by_readers(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    weak = _upload(local_shelf, tmp_path, "churn", "a", metrics={"auc": 0.5})
    strong = _upload(local_shelf, tmp_path, "churn", "b", metrics={"auc": 0.95})
    local_shelf.set_policy(aliases=[AliasRule("churn@prod", min_metrics={"auc": 0.9})])
    local_shelf.set_alias("churn", "prod", strong.version)
    assert local_shelf.load("churn@prod").exists()
    # The bypassing writer edits the alias record in storage directly.
    key = layout.alias_key("churn", "prod")
    stored = local_shelf.storage.read(key)
    raw = json.loads(stored.data)
    raw["version"] = weak.version
    local_shelf.storage.put_if_match(key, json.dumps(raw).encode(), stored.etag)
    with pytest.raises(PolicyViolation, match=r"churn:1 may not be churn@prod: metric auc is 0.5"):
        local_shelf.load("churn@prod")
    # Asking explicitly not to enforce, or by number, is the reader's own choice.
    assert local_shelf.load("churn@prod", enforce_policy=False).exists()
    assert local_shelf.load("churn:1").exists()


def test_policy_changes_are_create_only_records_with_history(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    _upload(local_shelf, tmp_path, "m", "a")
    assert local_shelf.policy() is None
    first = local_shelf.set_policy(aliases=[AliasRule("prod", tags={"ok": "1"})])
    second = local_shelf.set_policy(retention=RetentionRule(keep_last=3))
    assert (first.number, second.number) == (1, 2)
    assert [p.number for p in local_shelf.policy_history()] == [1, 2]
    assert local_shelf.policy() == second
    # A newest policy that cannot be read is an error, never "no policy".
    local_shelf.storage.put_if_absent(layout.policy_key(3), b"{broken")
    with pytest.raises(modelshelf.errors.InvalidRecord):
        local_shelf.policy()


class _SignaturePlugin:
    """Answers ``signed_by`` like a signature plugin would: versions tagged signed-by=<key>."""

    @modelshelf.hookimpl
    def modelshelf_check_version(self, shelf, version, requirements):  # type: ignore[no-untyped-def]
        if "signed_by" not in requirements:
            return None
        wanted = requirements["signed_by"]
        signer = version.tags.get("signed-by")
        if signer is None:
            return {"signed_by": f"{version.ref} is not signed"}
        if wanted is not True and signer not in wanted:
            return {"signed_by": f"signed by {signer}, not an allowed signer"}
        return {"signed_by": None}


@pytest.fixture
def signature_plugin() -> Iterator[None]:
    registry = get_registry()
    registry.register(_SignaturePlugin(), "test-signatures")
    try:
        yield
    finally:
        registry.unregister("test-signatures")


def test_signature_requirements_go_to_the_check_hook(
    local_shelf: Shelf, tmp_path: Path, signature_plugin: None
) -> None:
    unsigned = _upload(local_shelf, tmp_path, "m", "a")
    signed = _upload(local_shelf, tmp_path, "m", "b", tags={"signed-by": "alice"})
    with pytest.raises(PolicyViolation, match="m:1 is not signed"):
        local_shelf.load(unsigned.ref, require_signature=True)
    assert local_shelf.load(signed.ref, require_signature=["alice"]).exists()
    with pytest.raises(PolicyViolation, match="signed by alice, not an allowed signer"):
        local_shelf.load(signed.ref, require_signature=["mallory"])
    local_shelf.set_policy(aliases=[AliasRule("prod", signed_by=("alice",))])
    with pytest.raises(PolicyViolation, match="not signed"):
        local_shelf.set_alias("m", "prod", unsigned.version)
    local_shelf.set_alias("m", "prod", signed.version)
    assert local_shelf.verify_signatures(unsigned.ref)[0].what == "m:1 is not signed"
    assert local_shelf.verify_signatures(signed.ref, ["alice"]) == []


def test_a_signature_requirement_nobody_checks_is_not_met(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    registry = get_registry()
    registry.load()
    blocked = [name for name, _ in registry._impls("modelshelf_check_version")]
    saved = {name: registry.pm.get_plugin(name) for name in blocked}
    for name in blocked:  # an installed signature plugin must not answer here
        registry.pm.unregister(name=name)
    try:
        version = _upload(local_shelf, tmp_path, "m", "a")
        with pytest.raises(PolicyViolation, match="no installed plugin checks 'signed_by'"):
            local_shelf.load(version.ref, require_signature=True)
    finally:
        for name, plugin in saved.items():
            registry.pm.register(plugin, name=name)


def test_a_checking_plugin_that_raises_fails_the_check(local_shelf: Shelf, tmp_path: Path) -> None:
    class Broken:
        @modelshelf.hookimpl
        def modelshelf_check_version(self, shelf, version, requirements):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    registry = get_registry()
    registry.register(Broken(), "broken-check")
    try:
        version = _upload(local_shelf, tmp_path, "m", "a")
        with pytest.raises(PolicyViolation, match="failed checking it: boom"):
            local_shelf.load(version.ref, require_signature=True)
    finally:
        registry.unregister("broken-check")


def test_policy_cli(local_shelf: Shelf, local_shelf_path: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    _upload(local_shelf, tmp_path, "m", "a", metrics={"auc": 0.1})
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "aliases": [{"pattern": "prod", "min_metrics": {"auc": 0.8}}],
                "retention": {"keep_last": 2, "keep_newer_than": "90d"},
            }
        )
    )
    result = run_cli("--shelf", str(local_shelf_path), "policy", "set", str(policy_file))
    assert result.returncode == 0, result.stderr
    assert "protect @prod: auc >= 0.8" in result.stdout and "gc keeps the last 2" in result.stdout
    refused = run_cli("--shelf", str(local_shelf_path), "alias", "set", "m", "prod", "1")
    assert (
        refused.returncode == 1
        and refused.stderr.count("\n") == 1
        and "auc is 0.1" in refused.stderr
    )


# --- retention ---------------------------------------------------------------------------------


def test_gc_keep_last_keeps_exactly_the_policy_set_and_aliased_versions(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    for i in range(6):
        _upload(local_shelf, tmp_path, "m", str(i))
    local_shelf.set_alias("m", "prod", 1)
    local_shelf.set_alias("m", "old", 2)
    local_shelf.remove_alias("m", "old")  # version 2 was aliased recently: kept too
    dry = local_shelf.gc(keep=RetentionRule(keep_last=2), dry_run=True, grace=dt.timedelta(0))
    assert dry.retired == ("m:3", "m:4") and dry.retired_bytes == 2 * 300
    assert [v.version for v in local_shelf.versions("m")] == [1, 2, 3, 4, 5, 6]
    report = local_shelf.gc(keep=RetentionRule(keep_last=2), grace=dt.timedelta(0))
    assert report.retired == ("m:3", "m:4")
    assert [v.version for v in local_shelf.versions("m")] == [1, 2, 5, 6]
    assert [e.action for e in local_shelf.history("m")].count("delete") == 2
    # The blobs stay for the grace period after the deletion, then go.
    assert report.removed == ()
    later = local_shelf.gc(grace=dt.timedelta(0))
    assert len(later.removed) == 2


def test_keep_newer_than_and_the_policy_as_a_floor(local_shelf: Shelf, tmp_path: Path) -> None:
    for i in range(4):
        _upload(local_shelf, tmp_path, "m", str(i))
    # Make versions 1 and 2 look old: rewrite their manifests' creation time.
    for number in (1, 2):
        key = layout.version_key("m", number)
        stored = local_shelf.storage.read(key)
        raw = json.loads(stored.data)
        raw["created_at"] = "2020-01-01T00:00:00Z"
        local_shelf.storage.put_if_match(key, json.dumps(raw).encode(), stored.etag)
    local_shelf.set_policy(retention=RetentionRule(keep_newer_than_days=90))
    # --keep-last 1 alone would remove 1-3; the policy keeps 3 (new): only 1 and 2 go.
    report = local_shelf.gc(keep=RetentionRule(keep_last=1), grace=dt.timedelta(0))
    assert report.retired == ("m:1", "m:2")
    # A plain gc applies the policy too.
    assert local_shelf.gc(grace=dt.timedelta(0)).retired == ()


def test_keep_aliased_keeps_every_version_ever_aliased(local_shelf: Shelf, tmp_path: Path) -> None:
    for i in range(4):
        _upload(local_shelf, tmp_path, "m", str(i))
    local_shelf.set_alias("m", "prod", 1)
    local_shelf.set_alias("m", "prod", 4)
    rule = RetentionRule(keep_last=1, keep_aliased=True, recently_aliased_days=0)
    assert local_shelf.gc(keep=rule, dry_run=True).retired == ("m:2", "m:3")


def test_gc_cli_reports_retention(
    local_shelf: Shelf, local_shelf_path: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        _upload(local_shelf, tmp_path, "m", str(i))
    result = run_cli(
        "--shelf",
        str(local_shelf_path),
        "gc",
        "--keep-last",
        "1",
        "--keep-newer-than",
        "0d",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "Would delete 2 versions by retention, 600 B" in result.stdout and "m:1" in result.stdout
    assert [v.version for v in local_shelf.versions("m")] == [1, 2, 3]


# --- pickle scan -------------------------------------------------------------------------------


class _WritesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


class _PickleSerializer(Serializer):
    """A minimal unsafe serializer, as a framework plugin with a pickle format would be."""

    name = "test-pickle"
    framework = "test"
    format = "pickle"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        (directory / "model.pkl").write_bytes(pickle.dumps(obj))
        return SavedModel("test", "1")

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        return pickle.loads((directory / "model.pkl").read_bytes())  # the point of the test


@pytest.fixture
def pickle_serializer() -> Iterator[None]:
    class Plugin:
        @modelshelf.hookimpl
        def modelshelf_register_serializers(self, register):  # type: ignore[no-untyped-def]
            register(_PickleSerializer())

    registry = get_registry()
    registry.register(Plugin(), "test-pickle-plugin")
    try:
        yield
    finally:
        registry.unregister("test-pickle-plugin")


def test_a_marker_writing_pickle_is_flagged_and_not_run_without_an_override(
    local_shelf: Shelf, tmp_path: Path, pickle_serializer: None
) -> None:
    marker = tmp_path / "pwned"
    version = local_shelf.upload("evil", _WritesMarker(str(marker)), serializer="test-pickle")
    assert version.scan is not None and version.scan.dangerous
    assert version.scan.findings[0].imports == ("io.open",)
    assert local_shelf.get("evil").scan == version.scan  # recorded in the manifest
    with pytest.raises(UntrustedFormat):
        local_shelf.load("evil")
    with pytest.raises(FlaggedByScan, match="model.pkl imports io.open"):
        local_shelf.load("evil", trust=True)
    assert not marker.exists()
    local_shelf.load("evil", trust="ignore-scan")
    assert marker.exists()


def test_a_harmless_pickle_is_scanned_and_loads_with_trust(
    local_shelf: Shelf, pickle_serializer: None
) -> None:
    version = local_shelf.upload(
        "fine", {"weights": [1.0, 2.0], "name": "x"}, serializer="test-pickle"
    )
    assert (
        version.scan is not None
        and version.scan.scanned == ("model.pkl",)
        and not version.scan.dangerous
    )
    assert local_shelf.load("fine", trust=True) == {"weights": [1.0, 2.0], "name": "x"}


def test_the_scanner_reads_opcodes_of_every_protocol_and_zip_members(tmp_path: Path) -> None:
    import zipfile

    files = {}
    for protocol in range(0, 6):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(_WritesMarker("x"), protocol=protocol))
        files[path.name] = path
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_WritesMarker("x")))
    files["model.pt"] = archive
    (tmp_path / "notes.txt").write_text("not a pickle")
    files["notes.txt"] = tmp_path / "notes.txt"
    verdict = scan_files(files)
    assert verdict is not None and "notes.txt" not in verdict.scanned
    flagged = {f.path: f.imports for f in verdict.findings}
    assert all(flagged[f"p{p}.pkl"] == ("io.open",) for p in range(6))
    assert flagged["model.pt"] == ("archive/data.pkl: io.open",)


# --- attachments travel ------------------------------------------------------------------------


def test_attached_records_travel_with_copy_export_and_import(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    version = _upload(local_shelf, tmp_path, "team/m", "a")
    record = json.dumps({"schema": 1, "note": "hello"}, sort_keys=True).encode()
    record_id = local_shelf.attach(version.ref, "notes", record, action="note")
    assert local_shelf.attach(version.ref, "notes", record) == record_id  # create-only, idempotent
    assert local_shelf.attached(version.ref) == {"notes": {record_id: record}}
    assert [e.action for e in local_shelf.history("team/m")] == ["upload", "note"]
    other = modelshelf.open(str(tmp_path / "other"), cache=tmp_path / "cache2")
    report = copy(local_shelf, other, "team/m")
    assert report.attached == 1 and other.attached("team/m:1") == {"notes": {record_id: record}}
    # Attached later, copied again: carried although the version is already there.
    second = json.dumps({"schema": 1, "note": "again"}).encode()
    local_shelf.attach(version.ref, "notes", second)
    assert copy(local_shelf, other, "team/m").attached == 1
    bundle = tmp_path / "b.tar"
    export_bundle(local_shelf, "team/m", bundle)
    third = modelshelf.open(str(tmp_path / "third"), cache=tmp_path / "cache3")
    imported = import_bundle(third, bundle)
    assert imported.attached == 2 and len(third.attached("team/m:1")["notes"]) == 2
    # A record whose bytes do not hash to its id is not an attachment.
    key = layout.attached_key("team/m", 1, "notes", "0" * 64)
    third.storage.put_if_absent(key, b'{"schema": 1}')
    assert len(third.attached("team/m:1")["notes"]) == 2


def test_info_lists_scan_and_attachments(
    local_shelf: Shelf, local_shelf_path: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    version = _upload(local_shelf, tmp_path, "m", "a")
    local_shelf.attach(
        version.ref,
        "signatures",
        json.dumps({"schema": 1, "signer": "sha256:abc"}).encode(),
        action="sign",
    )
    result = run_cli("--shelf", str(local_shelf_path), "info", "m:1")
    assert "signatures: 1" in result.stdout and "sha256:abc" in result.stdout
    history = run_cli("--shelf", str(local_shelf_path), "history", "m")
    assert "sign" in history.stdout


def test_an_alias_set_while_retention_runs_keeps_its_version(
    local_shelf: Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planned for removal, then aliased before the tombstone lands: the lifecycle invariant keeps it."""
    from modelshelf import retention

    for i in range(3):
        _upload(local_shelf, tmp_path, "m", str(i))
    planned = retention.plan

    def plan_then_alias(*args: Any, **kwargs: Any) -> Any:
        doomed = planned(*args, **kwargs)
        local_shelf.set_alias("m", "prod", 1)  # another writer, between planning and removal
        return doomed

    monkeypatch.setattr(retention, "plan", plan_then_alias)
    report = local_shelf.gc(keep=RetentionRule(keep_last=1), grace=dt.timedelta(0))
    assert report.retired == ("m:2",)
    assert report.spared and report.spared[0].startswith("m:1: ")
    assert local_shelf.aliases("m")["prod"].version == 1 and local_shelf.load("m@prod").exists()
