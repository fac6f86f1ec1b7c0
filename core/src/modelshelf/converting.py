"""Saving a stored version again in another format, as a new version of the same model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .copying import origin_of
from .drafting import draft_upload
from .records import ModelVersion

if TYPE_CHECKING:
    from .shelf import Shelf


def convert(
    shelf: Shelf,
    ref: str,
    serializer: str,
    *,
    trust: bool | str = False,
    options: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Load ``ref`` and publish it again with ``serializer``, with the same metadata and
    ``lineage.source`` naming the version it came from."""
    version = shelf.get(ref)
    obj = shelf.load(version.ref, trust=trust)
    with draft_upload(
        version.name,
        obj,
        metadata=version.metadata,
        metrics=version.metrics,
        params=version.params,
        tags=version.tags,
        description=version.description,
        serializer=serializer,
        options=options,
    ) as draft:
        source = {
            "kind": "convert",
            "shelf": shelf.url,
            "name": version.name,
            "version": version.version,
            "serializer": version.serializer.name,
            "converted_from": origin_of(version),
        }
        manifest = attrs.evolve(
            draft.manifest, lineage=attrs.evolve(draft.manifest.lineage, source=source)
        )
        return shelf.publish(manifest, draft.blobs)
