"""What a modelshelf signature signs: the version's files as an OpenSSF model-signing manifest,
plus a digest of the version's copy-stable manifest fields (metrics, tags, serializer...).

The in-toto statement's resources are each file's path and sha256, exactly as ``model_signing``
computes them from a directory, so a downloaded version verifies with the upstream command line.
The extra predicate field ``modelshelf`` (ignored by upstream verifiers, as the v1.0 predicate
allows) binds the signature to the manifest too: editing metrics or tags after signing fails
verification here. The fields chosen survive ``copy``, ``export`` and ``import``.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

from modelshelf import ModelVersion
from modelshelf.convert import converter
from modelshelf.copying import origin_of

PREDICATE_FIELD = "modelshelf"


def claim(version: ModelVersion) -> dict[str, Any]:
    """The manifest fields a signature covers beyond the files, with a digest of them."""
    fields = {
        "origin": origin_of(version),
        "serializer": converter.unstructure(version.serializer),
        "framework": converter.unstructure(version.framework),
        "metadata": version.metadata,
        "metrics": version.metrics,
        "params": version.params,
        "tags": version.tags,
        "description": version.description,
        "signature": version.signature,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return {"name": version.name, "manifest_sha256": hashlib.sha256(text.encode()).hexdigest()}


def file_manifest(version: ModelVersion) -> Any:
    """The version's files as a ``model_signing`` manifest (no file is read: sha256s are known)."""
    from model_signing import manifest
    from model_signing._hashing import hashing

    items = [
        manifest.FileManifestItem(
            path=pathlib.PurePosixPath(f.path),
            digest=hashing.Digest("sha256", bytes.fromhex(f.sha256)),
        )
        for f in version.files
    ]
    serialization = manifest._FileSerialization("sha256", allow_symlinks=False)
    return manifest.Manifest(version.name.replace("/", "-"), items, serialization)


def payload(version: ModelVersion) -> Any:
    """The ``model_signing`` payload: its in-toto statement, with the modelshelf claim added."""
    from in_toto_attestation.v1 import statement
    from model_signing._signing import signing

    base = signing.Payload(file_manifest(version))
    from google.protobuf import json_format

    predicate = json_format.MessageToDict(base.statement.pb.predicate)
    predicate[PREDICATE_FIELD] = claim(version)
    base.statement = statement.Statement(
        subjects=list(base.statement.pb.subject),
        predicate_type=base.statement.pb.predicate_type,
        predicate=predicate,
    )
    return base
