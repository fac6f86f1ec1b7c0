"""Checking a version's signatures, offline: each reason for refusing is one line.

A signature is valid for a version when (1) its DSSE envelope verifies with the signer's key,
(2) the in-toto statement lists exactly the version's files with their sha256 (no file more, none
less, and the root digest matches), (3) its ``modelshelf`` claim matches the version's manifest
fields, and, when signers are named, (4) the key is one of them, or the signing certificate chains
to one of the certificates named.
"""

from __future__ import annotations

import base64
import json
import pathlib
import tempfile
from collections.abc import Iterable
from typing import Any

import attrs
from modelshelf import ModelVersion, Shelf
from modelshelf.errors import InvalidRecord

from .records import KIND, SignatureRecord, record_from_json
from .signing import fingerprint
from .statement import PREDICATE_FIELD, claim


@attrs.frozen
class Signers:
    """Who may have signed: key fingerprints, CA certificates (PEM), Sigstore identities."""

    anyone: bool = False
    fingerprints: frozenset[str] = frozenset()
    certificates: tuple[str, ...] = ()
    identities: tuple[tuple[str, str], ...] = ()


def parse_signers(wanted: bool | Iterable[str]) -> Signers:
    """``True`` (anyone), or each of: PEM public key or certificate (text or file path),
    ``sha256:<fingerprint>``, or ``sigstore:IDENTITY@ISSUER``."""
    if wanted is True:
        return Signers(anyone=True)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    fingerprints: set[str] = set()
    certificates: list[str] = []
    identities: list[tuple[str, str]] = []
    for item in wanted:  # type: ignore[union-attr]
        text = str(item).strip()
        if text.startswith("sha256:"):
            fingerprints.add(text.lower())
            continue
        if text.startswith("sigstore:"):
            identity, _, issuer = text[len("sigstore:") :].rpartition("@")
            identities.append((identity, issuer))
            continue
        if not text.startswith("-----BEGIN"):
            text = pathlib.Path(text).expanduser().read_text()
        key: Any
        if "CERTIFICATE" in text:
            certificate = x509.load_pem_x509_certificate(text.encode())
            certificates.append(text)
            key = certificate.public_key()
        else:
            key = serialization.load_pem_public_key(text.encode())
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fingerprints.add(fingerprint(pem))
    return Signers(False, frozenset(fingerprints), tuple(certificates), tuple(identities))


def sigstore_identity(bundle: str) -> str | None:
    """The subject of a keyless bundle's certificate (an e-mail or workflow URI), if readable."""
    try:
        from cryptography import x509

        raw = json.loads(bundle)["verificationMaterial"]
        der = base64.b64decode(raw.get("certificate", {}).get("rawBytes", ""))
        certificate = x509.load_der_x509_certificate(der)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return str(next(iter(names)).value)
    except Exception:  # informative only
        return None


def _verify_envelope(bundle: dict[str, Any], public_key: Any) -> dict[str, Any]:
    """Check the DSSE signature over the payload with ``public_key``; return the statement."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing._signing.sign_ec_key import get_ec_key_hash
    from model_signing._signing.sign_sigstore_pb import pae

    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    public_key.verify(signature, pae(payload), ec.ECDSA(get_ec_key_hash(public_key)))
    return json.loads(payload)


def _leaf_key(bundle: dict[str, Any]) -> Any:
    from cryptography import x509

    material = bundle["verificationMaterial"]
    chain = material.get("x509CertificateChain", {}).get("certificates") or [
        material.get("certificate", {})
    ]
    return x509.load_der_x509_certificate(base64.b64decode(chain[0]["rawBytes"])).public_key()


def _check_chain(bundle_text: str, certificates: tuple[str, ...]) -> str | None:
    from model_signing._signing import sign_certificate, sign_sigstore_pb

    with tempfile.TemporaryDirectory(prefix="modelshelf-verify-") as scratch:
        roots = pathlib.Path(scratch) / "roots.pem"
        roots.write_text("".join(certificates))
        path = pathlib.Path(scratch) / "model.sig"
        path.write_text(bundle_text)
        try:
            sign_certificate.Verifier([roots]).verify(sign_sigstore_pb.Signature.read(path))
        except Exception as exc:
            return f"its certificate does not chain to an allowed certificate ({_first_line(exc)})"
    return None


def _check_sigstore(bundle_text: str, identities: tuple[tuple[str, str], ...]) -> str | None:
    from model_signing._signing import sign_sigstore

    failures = []
    with tempfile.TemporaryDirectory(prefix="modelshelf-verify-") as scratch:
        path = pathlib.Path(scratch) / "model.sig"
        path.write_text(bundle_text)
        for identity, issuer in identities:
            try:
                sign_sigstore.Verifier(identity=identity, oidc_issuer=issuer).verify(
                    sign_sigstore.Signature.read(path)
                )
                return None
            except Exception as exc:
                failures.append(_first_line(exc))
    return "keyless signature not by an allowed identity" + (
        f" ({failures[0]})" if failures else ""
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def check_record(record: SignatureRecord, version: ModelVersion, signers: Signers) -> str | None:
    """Why ``record`` is not a valid signature of ``version`` by one of ``signers``, or None."""
    try:
        bundle = json.loads(record.bundle)
    except ValueError:
        return "its bundle is not JSON"
    if record.method == "sigstore":
        if not signers.identities:
            return "keyless (Sigstore) signature: name the identity to check (sigstore:IDENTITY@ISSUER)"
        problem = _check_sigstore(record.bundle, signers.identities)
        if problem:
            return problem
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        who = None
    else:
        from cryptography.hazmat.primitives import serialization

        try:
            key = (
                _leaf_key(bundle)
                if record.method == "certificate"
                else serialization.load_pem_public_key((record.public_key or "").encode())
            )
            statement = _verify_envelope(bundle, key)
        except Exception as exc:
            return f"the signature does not verify ({_first_line(exc) or 'bad signature'})"
        who = fingerprint(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    problem = _check_statement(statement, version)
    if problem:
        return problem
    if signers.anyone or record.method == "sigstore":
        return None
    if who in signers.fingerprints:
        return None
    if record.method == "certificate" and signers.certificates:
        return _check_chain(record.bundle, signers.certificates)
    return f"signed by {who}, not an allowed signer"


def _check_statement(statement: dict[str, Any], version: ModelVersion) -> str | None:
    from model_signing._signing.signing import dsse_payload_to_manifest

    try:
        signed = dsse_payload_to_manifest(statement)
    except Exception as exc:
        return f"the signed statement is inconsistent ({_first_line(exc)})"
    files = {
        rd.identifier: (rd.digest.algorithm, rd.digest.digest_hex)
        for rd in signed.resource_descriptors()
    }
    expected = {f.path: ("sha256", f.sha256) for f in version.files}
    if files != expected:
        extra = sorted(set(files) - set(expected))
        missing = sorted(set(expected) - set(files))
        changed = sorted(p for p in set(files) & set(expected) if files[p] != expected[p])
        what = (
            f"{changed[0]} has a different sha256"
            if changed
            else f"{missing[0]} is not signed"
            if missing
            else f"{extra[0]} is signed but not in the version"
        )
        return f"the signature does not cover exactly the manifest's files: {what}"
    if statement.get("predicate", {}).get(PREDICATE_FIELD) != claim(version):
        return "the manifest changed after signing (metadata, metrics, tags, serializer or origin differ)"
    return None


def signatures(shelf: Shelf, version: ModelVersion) -> list[tuple[str, SignatureRecord | str]]:
    """Every signature record of ``version``: (id, record), or (id, why it is unreadable)."""
    found: list[tuple[str, SignatureRecord | str]] = []
    for record_id, data in sorted(shelf.attached(version.ref, KIND).get(KIND, {}).items()):
        try:
            found.append((record_id, record_from_json(data, source=f"signature {record_id[:12]}")))
        except InvalidRecord as exc:
            found.append((record_id, str(exc)))
    return found


def check_signed(shelf: Shelf, version: ModelVersion, wanted: bool | Iterable[str]) -> str | None:
    """``None`` if a signature of ``version`` is valid (by an allowed signer), else one line why not."""
    try:
        signers = parse_signers(wanted)
    except (OSError, ValueError) as exc:
        return f"cannot read the allowed signers: {_first_line(exc)}"
    records = signatures(shelf, version)
    if not records:
        return f"{version.ref} is not signed"
    reasons = []
    for _, record in records:
        if isinstance(record, str):
            reasons.append(f"unreadable signature record: {record}")
            continue
        reason = check_record(record, version, signers)
        if reason is None:
            return None
        reasons.append(reason)
    # The most telling reason: tampering before "not an allowed signer".
    reasons.sort(key=lambda r: ("not an allowed signer" in r, r))
    more = f" (and {len(reasons) - 1} more signatures refused)" if len(reasons) > 1 else ""
    return f"no valid signature: {reasons[0]}{more}"
