"""Signing and verifying versions with real keys: tampering with a blob, the manifest or the
signature is caught with a one-line reason; unknown signers are refused; policies use signatures;
signatures travel with copy, export and import; the upstream command line agrees."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf import layout
from modelshelf.copying import copy, export_bundle, import_bundle
from modelshelf.errors import IntegrityError, PolicyViolation
from modelshelf.records import AliasRule
from modelshelf.shelf import Shelf
from modelshelf_sign.records import KIND, SignatureRecord, record_from_json, record_to_json
from modelshelf_sign.signing import sign
from modelshelf_sign.verifying import check_signed, signatures

#: The fixtures of conftest.py (key files, certificate files).
KeyPair = Any
CertifiedKey = Any


def _model(tmp_path: Path, tag: str = "a") -> Path:
    folder = tmp_path / f"model-{tag}"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(4096) + tag.encode())
    (folder / "tokenizer" / "vocab.txt").write_text(f"a\nb\n{tag}\n")
    return folder


@pytest.fixture
def shelf(tmp_path: Path) -> Shelf:
    return modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")


def _cli(*args: str, shelf: Shelf) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", "--shelf", shelf.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sign_and_verify_with_a_real_key(shelf: Shelf, tmp_path: Path, alice: KeyPair) -> None:
    version = shelf.upload("team/bert", _model(tmp_path), metrics={"f1": 0.8})
    record = sign(shelf, version.ref, key=alice.private)
    assert record.method == "key" and record.signer.startswith("sha256:")
    assert check_signed(shelf, version, [str(alice.public)]) is None
    assert check_signed(shelf, version, True) is None
    assert check_signed(shelf, version, [record.signer]) is None  # a fingerprint names the key too
    assert shelf.verify_signatures(version.ref, [str(alice.public)]) == []
    loaded = shelf.load(version.ref, require_signature=[str(alice.public)])
    assert (loaded / "weights.bin").exists()
    assert [e.action for e in shelf.history("team/bert")] == ["upload", "sign"]


def test_a_signature_by_an_unknown_key_is_refused(
    shelf: Shelf, tmp_path: Path, alice: KeyPair, mallory: KeyPair
) -> None:
    version = shelf.upload("m", _model(tmp_path))
    sign(shelf, version.ref, key=mallory.private)
    reason = check_signed(shelf, version, [str(alice.public)])
    assert reason is not None and "not an allowed signer" in reason and "\n" not in reason
    with pytest.raises(PolicyViolation, match="not an allowed signer"):
        shelf.load(version.ref, require_signature=[str(alice.public)])


def test_an_unsigned_version_is_refused(shelf: Shelf, tmp_path: Path, alice: KeyPair) -> None:
    version = shelf.upload("m", _model(tmp_path))
    with pytest.raises(PolicyViolation, match="m:1 is not signed"):
        shelf.load(version.ref, require_signature=[str(alice.public)])


def test_tampering_with_a_blob_is_caught(shelf: Shelf, tmp_path: Path, alice: KeyPair) -> None:
    version = shelf.upload("m", _model(tmp_path))
    sign(shelf, version.ref, key=alice.private)
    weights = next(f for f in version.files if f.path == "weights.bin")
    blob = Path(shelf.url) / layout.blob_key(weights.sha256)
    blob.chmod(0o644)
    blob.write_bytes(os.urandom(weights.size))
    result = _cli("verify", version.ref, "--signatures", "--signer", str(alice.public), shelf=shelf)
    assert result.returncode == 1
    assert result.stdout.strip() == "m:1/weights.bin: blob content does not match its sha256"
    with pytest.raises(IntegrityError):
        shelf.load(version.ref, require_signature=[str(alice.public)])


def _rewrite_manifest(shelf: Shelf, name: str, number: int, change) -> None:  # type: ignore[no-untyped-def]
    key = layout.version_key(name, number)
    stored = shelf.storage.read(key)
    raw = json.loads(stored.data)
    change(raw)
    shelf.storage.put_if_match(key, json.dumps(raw).encode(), stored.etag)


def test_tampering_with_the_manifest_is_caught(
    shelf: Shelf, tmp_path: Path, alice: KeyPair
) -> None:
    version = shelf.upload("m", _model(tmp_path, "good"))
    evil = shelf.upload("other", _model(tmp_path, "evil"))
    sign(shelf, version.ref, key=alice.private)
    evil_weights = next(f for f in evil.files if f.path == "weights.bin")

    def swap_weights(raw: dict) -> None:  # type: ignore[type-arg]
        for entry in raw["files"]:
            if entry["path"] == "weights.bin":
                entry.update(sha256=evil_weights.sha256, size=evil_weights.size)

    _rewrite_manifest(shelf, "m", 1, swap_weights)
    result = _cli("verify", "m:1", "--signatures", "--signer", str(alice.public), shelf=shelf)
    assert result.returncode == 1, result.stdout
    assert result.stdout.strip() == (
        "m:1: no valid signature: the signature does not cover exactly the manifest's files: "
        "weights.bin has a different sha256"
    )
    _rewrite_manifest(shelf, "m", 1, lambda raw: raw["files"].pop())  # a file dropped
    assert "weights.bin is signed but not in the version" in str(
        check_signed(shelf, shelf.get("m:1"), [str(alice.public)])
    )


def test_editing_metrics_after_signing_is_caught(
    shelf: Shelf, tmp_path: Path, alice: KeyPair
) -> None:
    version = shelf.upload("m", _model(tmp_path), metrics={"auc": 0.5})
    sign(shelf, version.ref, key=alice.private)
    _rewrite_manifest(shelf, "m", 1, lambda raw: raw["metrics"].update(auc=0.99))
    reason = check_signed(shelf, shelf.get("m:1"), [str(alice.public)])
    assert (
        reason
        == "no valid signature: the manifest changed after signing (metadata, metrics, tags, serializer or origin differ)"
    )


def _replace_signature(shelf: Shelf, ref: str, change) -> None:  # type: ignore[no-untyped-def]
    """What a writer with bucket access could do: drop the record and store a doctored one."""
    version = shelf.get(ref)
    ((record_id, data),) = shelf.attached(ref, KIND)[KIND].items()
    record = record_from_json(data, source="test")
    new = change(record)
    new_data = record_to_json(new)
    shelf.storage.delete(layout.attached_key(version.name, version.version, KIND, record_id))
    shelf.storage.put_if_absent(
        layout.attached_key(
            version.name, version.version, KIND, hashlib.sha256(new_data).hexdigest()
        ),
        new_data,
    )


def _with_bundle(record: SignatureRecord, edit) -> SignatureRecord:  # type: ignore[no-untyped-def]
    import attrs

    bundle = json.loads(record.bundle)
    edit(bundle)
    return attrs.evolve(record, bundle=json.dumps(bundle))


def test_tampering_with_the_signature_is_caught(
    shelf: Shelf, tmp_path: Path, alice: KeyPair, mallory: KeyPair
) -> None:
    version = shelf.upload("m", _model(tmp_path))
    sign(shelf, version.ref, key=alice.private)

    def flip_signature(bundle: dict) -> None:  # type: ignore[type-arg]
        raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
        raw[-1] ^= 1
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()

    _replace_signature(shelf, version.ref, lambda r: _with_bundle(r, flip_signature))
    reason = check_signed(shelf, version, [str(alice.public)])
    assert reason is not None and reason.startswith(
        "no valid signature: the signature does not verify"
    )

    # A payload edited to name other files, left with alice's signature: does not verify either.
    def other_payload(bundle: dict) -> None:  # type: ignore[type-arg]
        payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        payload["predicate"]["resources"][0]["digest"] = "0" * 64
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()

    _replace_signature(shelf, version.ref, lambda r: _with_bundle(r, other_payload))
    assert "does not verify" in str(check_signed(shelf, version, [str(alice.public)]))

    # Claiming alice's key for mallory's signature: the signature does not verify with it.
    second = shelf.upload("n", _model(tmp_path, "n"))
    sign(shelf, second.ref, key=mallory.private)
    import attrs

    _replace_signature(
        shelf, second.ref, lambda r: attrs.evolve(r, public_key=alice.public.read_text())
    )
    assert "does not verify" in str(check_signed(shelf, second, [str(alice.public)]))


def test_signed_download_verifies_with_the_upstream_command_line(
    shelf: Shelf, tmp_path: Path, alice: KeyPair, mallory: KeyPair
) -> None:
    version = shelf.upload("team/bert", _model(tmp_path))
    result = _cli("sign", version.ref, "--key", str(alice.private), shelf=shelf)
    assert result.returncode == 0 and result.stdout.startswith(
        "Signed team/bert:1 (key) by sha256:"
    ), result.stderr
    out = shelf.download(version.ref, tmp_path / "downloaded")
    bundle = tmp_path / "bert.sig"
    listed = _cli("signatures", version.ref, "--write", str(bundle), shelf=shelf)
    assert listed.returncode == 0 and " key  sha256:" in listed.stdout

    def upstream(public: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "model_signing",
                "verify",
                "key",
                str(out),
                "--signature",
                str(bundle),
                "--public_key",
                str(public),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = upstream(alice.public)
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout, ok.stderr
    assert upstream(mallory.public).returncode == 1
    (out / "weights.bin").write_bytes(b"changed")
    changed = upstream(alice.public)
    assert (
        changed.returncode == 1
        and "Hash mismatch for" in changed.stderr
        and "weights.bin" in changed.stderr
    )


def test_certificate_signing_and_chain_to_an_allowed_ca(
    shelf: Shelf, tmp_path: Path, certified: CertifiedKey, alice: KeyPair
) -> None:
    version = shelf.upload("m", _model(tmp_path))
    record = sign(
        shelf,
        version.ref,
        key=certified.private,
        certificate=certified.certificate,
        chain=[certified.ca],
    )
    assert record.method == "certificate"
    assert check_signed(shelf, version, [str(certified.ca)]) is None
    assert check_signed(shelf, version, True) is None
    assert "not an allowed signer" in str(check_signed(shelf, version, [str(alice.public)]))


def test_protected_alias_needs_a_signature_by_an_allowed_key(
    shelf: Shelf, tmp_path: Path, alice: KeyPair, mallory: KeyPair
) -> None:
    good = shelf.upload("m", _model(tmp_path, "a"))
    bad = shelf.upload("m", _model(tmp_path, "b"))
    sign(shelf, good.ref, key=alice.private)
    sign(shelf, bad.ref, key=mallory.private)
    shelf.set_policy(aliases=[AliasRule("prod", signed_by=(alice.public.read_text(),))])
    with pytest.raises(
        PolicyViolation,
        match=r"m:2 may not be m@prod: no valid signature: signed by sha256:\w+, not an allowed signer",
    ):
        shelf.set_alias("m", "prod", bad.version)
    shelf.set_alias("m", "prod", good.version)
    assert shelf.load("m@prod").exists()
    # A writer editing the alias record directly is caught by every reader that enforces the policy.
    key = layout.alias_key("m", "prod")
    stored = shelf.storage.read(key)
    raw = json.loads(stored.data)
    raw["version"] = bad.version
    shelf.storage.put_if_match(key, json.dumps(raw).encode(), stored.etag)
    with pytest.raises(PolicyViolation, match="not an allowed signer"):
        shelf.load("m@prod")


def test_signatures_travel_with_copy_export_and_import(
    shelf: Shelf, tmp_path: Path, alice: KeyPair
) -> None:
    version = shelf.upload("team/bert", _model(tmp_path), metrics={"f1": 0.8})
    sign(shelf, version.ref, key=alice.private)
    other = modelshelf.open(str(tmp_path / "other"), cache=tmp_path / "cache-other")
    other.upload("team/bert", _model(tmp_path, "unrelated"))  # the copy becomes version 2 there
    report = copy(shelf, other, "team/bert")
    assert report.copied == {"team/bert:1": "team/bert:2"} and report.attached == 1
    assert other.verify_signatures("team/bert:2", [str(alice.public)]) == []
    assert "is not signed" in other.verify_signatures("team/bert:1", [str(alice.public)])[0].what
    bundle = tmp_path / "bert.tar"
    export_bundle(other, "team/bert:2", bundle)
    third = modelshelf.open(str(tmp_path / "third"), cache=tmp_path / "cache-third")
    assert import_bundle(third, bundle).attached == 1
    assert third.verify_signatures("team/bert:1", [str(alice.public)]) == []
    assert [len(s) for s in (signatures(third, third.get("team/bert:1")),)] == [1]


def test_info_lists_signatures(shelf: Shelf, tmp_path: Path, alice: KeyPair) -> None:
    version = shelf.upload("m", _model(tmp_path))
    record = sign(shelf, version.ref, key=alice.private)
    info = _cli("info", version.ref, shelf=shelf)
    assert "signatures: 1" in info.stdout and record.signer in info.stdout
    history = _cli("history", "m", shelf=shelf)
    assert " sign " in history.stdout
