"""Signing a version: build the statement from its manifest (no download), sign it with
``model_signing``, store the record create-only beside the version."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pathlib
import tempfile
from collections.abc import Iterable
from typing import Any

from modelshelf import Shelf
from modelshelf.errors import ModelshelfError
from modelshelf.lineage import current_user

from .records import KIND, SignatureRecord, record_to_json
from .statement import payload


def fingerprint(public_pem: bytes) -> str:
    """``sha256:<hex>`` of a public key's PEM (SubjectPublicKeyInfo), as in model_signing's key hint."""
    return "sha256:" + hashlib.sha256(public_pem).hexdigest()


def public_pem_of(private_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _bundle_text(signer: Any, version: Any) -> str:
    signature = signer.sign(payload(version))
    with tempfile.TemporaryDirectory(prefix="modelshelf-sign-") as scratch:
        path = pathlib.Path(scratch) / "model.sig"
        signature.write(path)
        return path.read_text(encoding="utf-8")


def sign(
    shelf: Shelf,
    ref: str,
    *,
    key: str | os.PathLike[str] | None = None,
    password: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    chain: Iterable[str | os.PathLike[str]] = (),
    sigstore: bool = False,
    identity_token: str | None = None,
) -> SignatureRecord:
    """Sign version ``ref`` and store the signature beside it; return the record.

    ``key``: a PEM elliptic-curve private key (P-256/384/521), offline. With ``certificate`` (and
    ``chain``), the key's certificate goes into the bundle. ``sigstore=True`` signs keyless
    through Sigstore's public services (needs network and an OIDC identity).
    """
    version = shelf.get(ref)
    if sigstore:
        from model_signing._signing import sign_sigstore

        signer: Any = sign_sigstore.Signer(identity_token=identity_token)
        method, public, who = "sigstore", None, "sigstore"
    else:
        if key is None:
            raise ModelshelfError("give the private key to sign with (--key KEY), or --sigstore")
        from cryptography.hazmat.primitives import serialization

        key_path = pathlib.Path(key)
        try:
            private = serialization.load_pem_private_key(
                key_path.read_bytes(), password.encode() if password else None
            )
        except (OSError, ValueError, TypeError) as exc:
            raise ModelshelfError(f"cannot read private key {key_path}: {exc}") from None
        public_pem = public_pem_of(private)
        who = fingerprint(public_pem)
        if certificate is not None:
            from model_signing._signing import sign_certificate

            signer = sign_certificate.Signer(
                key_path, pathlib.Path(certificate), [pathlib.Path(c) for c in chain]
            )
            method, public = "certificate", public_pem.decode()
        else:
            from model_signing._signing import sign_ec_key

            try:
                signer = sign_ec_key.Signer(key_path, password)
            except ValueError as exc:
                raise ModelshelfError(f"cannot sign with {key_path}: {exc}") from None
            method, public = "key", public_pem.decode()
    bundle = _bundle_text(signer, version)
    if sigstore:
        from .verifying import sigstore_identity

        who = sigstore_identity(bundle) or "sigstore"
    record = SignatureRecord(
        method=method,
        bundle=bundle,
        signer=who,
        signed_at=dt.datetime.now(dt.UTC),
        signed_by=current_user(),
        public_key=public,
        signed_ref=version.ref,
    )
    shelf.attach(version.ref, KIND, record_to_json(record), action="sign")
    return record
