"""Records that plugins keep beside a version (signatures, say), and that travel with it.

An attachment is a small JSON record of some ``kind`` stored create-only at
``models/<name>/_attached/<version>/<kind>/<id>.json``, where ``id`` is the sha256 of its bytes:
storing the same record twice is harmless, and a copy, export or import carries every attachment
of every kind without knowing what it means. Core never trusts an attachment: whoever uses one
(the plugin that wrote it) checks it, for example a signature against the version's files.
"""

from __future__ import annotations

import hashlib
import re

from . import convert, eventlog, layout
from .catalog import Catalog
from .errors import (
    AlreadyExists,
    InvalidName,
    InvalidRecord,
    KeyNotFound,
    ModelshelfError,
    StorageError,
)

_KIND = re.compile(r"[a-z][a-z0-9-]{0,39}")
_ID = re.compile(r"[0-9a-f]{64}")
#: An attachment is metadata: refuse larger ones before they are stored or read.
MAX_ATTACHMENT_BYTES = 1 << 20


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidName(
            f"invalid attachment kind {kind!r}: lowercase letters, digits and '-', at most 40"
        )
    return kind


def attach(
    catalog: Catalog, name: str, version: int, kind: str, data: bytes, *, action: str = "attach"
) -> str:
    """Store ``data`` (a JSON object) beside live ``name:version``; return its id.

    The model's history gets an event ``action`` for the version (unless the same record was
    already there).
    """
    check_kind(kind)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ModelshelfError(
            f"a {kind} record of {len(data)} bytes is over the {MAX_ATTACHMENT_BYTES} limit"
        )
    convert.parse_json(
        data, source=f"the {kind} record to attach"
    )  # a JSON object of a known schema
    catalog.check_format(create=True)
    catalog.live_version(name, version)
    record_id = hashlib.sha256(data).hexdigest()
    key = layout.attached_key(name, version, kind, record_id)
    try:
        catalog.storage.put_if_absent(key, data)
    except AlreadyExists:
        return record_id  # content-addressed: the same record is already there
    except StorageError:
        if not catalog.holds(key, data):
            raise
    eventlog.append(catalog, name, action, version=version)
    return record_id


def attached(
    catalog: Catalog, name: str, version: int, kind: str | None = None
) -> dict[str, dict[str, bytes]]:
    """``{kind: {id: bytes}}`` of every attachment of ``name:version`` (of one ``kind``).

    A record whose bytes do not hash to its id, or which is not under a valid kind, is skipped:
    it was not written by :func:`attach`.
    """
    prefix = layout.attached_prefix(name, version, kind)
    base = layout.attached_prefix(name, version)
    found: dict[str, dict[str, bytes]] = {}
    for info in catalog.storage.list(prefix):
        kind_part, _, filename = info.key[len(base) :].partition("/")
        record_id = filename.removesuffix(".json")
        if (
            not _KIND.fullmatch(kind_part)
            or not _ID.fullmatch(record_id)
            or not filename.endswith(".json")
        ):
            continue
        if info.size > MAX_ATTACHMENT_BYTES:
            continue
        try:
            data = catalog.storage.read(info.key).data
        except KeyNotFound:
            continue
        if hashlib.sha256(data).hexdigest() == record_id:
            found.setdefault(kind_part, {})[record_id] = data
    return found


def carry(catalog: Catalog, name: str, version: int, records: dict[str, dict[str, bytes]]) -> int:
    """Store attachments brought from another shelf or a bundle beside ``name:version``; return
    how many were new. Records that are not JSON objects of a known schema are refused."""
    added = 0
    for kind, by_id in sorted(records.items()):
        for record_id, data in sorted(by_id.items()):
            if hashlib.sha256(data).hexdigest() != record_id:
                raise InvalidRecord(f"attachment {kind}/{record_id} does not hash to its id")
            key = layout.attached_key(name, version, check_kind(kind), record_id)
            if catalog.storage.stat(key) is not None:
                continue
            attach(catalog, name, version, kind, data, action="attach")
            added += 1
    return added
