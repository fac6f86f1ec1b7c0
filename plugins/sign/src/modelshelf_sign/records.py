"""The signature record stored beside a version (attachment kind ``signatures``).

It holds the Sigstore bundle exactly as ``model_signing`` writes it (so it can be handed to the
upstream ``model_signing verify`` command unchanged), plus what a reader needs to check it
offline: the signer's public key (key signing) or nothing more (certificates and Sigstore carry
theirs in the bundle).
"""

from __future__ import annotations

import datetime as dt

import attrs
from modelshelf.convert import converter, from_json, to_json

#: The attachment kind signatures are stored under (``models/<name>/_attached/<n>/signatures/``).
KIND = "signatures"
SCHEMA = 1


@attrs.frozen
class SignatureRecord:
    """One signature of one version."""

    #: ``key`` (elliptic-curve key), ``certificate`` or ``sigstore`` (keyless).
    method: str
    #: The Sigstore bundle JSON, byte for byte as ``model_signing`` wrote it.
    bundle: str
    #: Who signed: ``sha256:<fingerprint of the public key PEM>`` or a Sigstore identity.
    signer: str
    signed_at: dt.datetime
    #: The user who ran ``sign`` (informative only: the bundle is what proves anything).
    signed_by: str
    #: PEM of the public key (``key`` method); certificates are inside the bundle.
    public_key: str | None = None
    #: The version signed, as ``name:N`` on the shelf where it was signed (informative).
    signed_ref: str = ""
    schema: int = SCHEMA
    kind: str = "signature"


def record_to_json(record: SignatureRecord) -> bytes:
    return to_json(record)


def record_from_json(data: bytes, source: str) -> SignatureRecord:
    return from_json(data, SignatureRecord, source=source)


__all__ = ["KIND", "SignatureRecord", "converter", "record_from_json", "record_to_json"]
