"""The one cattrs converter: records to JSON bytes and back, with schema checks.

Reading is defensive: a stored record may come from a newer modelshelf, a crashed writer or an
attacker. Anything that is not a valid record of a schema this core knows raises
:class:`~modelshelf.errors.InvalidRecord` (or :class:`~modelshelf.errors.SchemaTooNew`) with a
message naming where it came from.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from .errors import InvalidName, InvalidRecord, SchemaTooNew
from .records import PACKED_SCHEMA, SCHEMA, Alias, Blob, Event, FileEntry, ModelVersion, Tombstone
from .refs import check_alias, check_file_list, check_file_path, check_name, check_version

T = TypeVar("T")

#: Refuse records larger than this before parsing: a manifest is metadata, not a data store.
MAX_RECORD_BYTES = 16 << 20

converter = cattrs.Converter(forbid_extra_keys=False)


def _datetime_to_json(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _datetime_from_json(value: Any, _: type) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time, got {type(value).__name__}")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _file_entry_from_json(value: Any, _: type) -> FileEntry:
    if not isinstance(value, dict):
        raise ValueError("a file entry must be an object")
    path = value.get("path")
    sha256 = _checked_sha256(value.get("sha256"), "file entry")
    size = _checked_size(value.get("size"), "file entry")
    pack, offset = value.get("pack"), value.get("offset")
    if pack is None and offset is None:
        return FileEntry(check_file_path(path), sha256, size)
    pack = _checked_sha256(pack, "packed file entry's pack")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"packed file entry has an invalid offset: {offset!r}")
    return FileEntry(check_file_path(path), sha256, size, pack, offset)


def _blob_from_json(value: Any, _: type) -> Blob:
    if not isinstance(value, dict):
        raise ValueError("a pack must be an object")
    return Blob(
        _checked_sha256(value.get("sha256"), "pack"), _checked_size(value.get("size"), "pack")
    )


def _checked_sha256(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not _is_hex(value):
        raise ValueError(f"{what} has an invalid sha256: {value!r}")
    return value


def _checked_size(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} has an invalid size: {value!r}")
    return value


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


converter.register_unstructure_hook(dt.datetime, _datetime_to_json)
converter.register_structure_hook(dt.datetime, _datetime_from_json)
converter.register_structure_hook(FileEntry, _file_entry_from_json)
converter.register_structure_hook(Blob, _blob_from_json)
# A manifest without a scan verdict or packs, a file entry outside a pack, and a tombstone without
# blobs keep the exact bytes of those written before these fields existed (golden files pin these
# shapes). A factory taking the converter, so that copies of this converter (the CLI's JSON output)
# keep their own hooks.
_OMITTED_WHEN_EMPTY: dict[type, tuple[str, ...]] = {
    ModelVersion: ("scan", "packs"),
    FileEntry: ("pack", "offset"),
    Tombstone: ("blobs",),
}


def _omitting_empty(cls: type, conv: cattrs.Converter) -> Callable[[Any], dict[str, Any]]:
    overrides: dict[str, Any] = {
        field: override(omit_if_default=True) for field in _OMITTED_WHEN_EMPTY[cls]
    }
    return make_dict_unstructure_fn(cls, conv, **overrides)


converter.register_unstructure_hook_factory(lambda cls: cls in _OMITTED_WHEN_EMPTY, _omitting_empty)


def _check_fields(record: Any) -> None:
    """Refuse a record whose identity fields could never have been written by modelshelf.

    Readers compare these fields with the key a record was read from; checking them here means
    no caller can trust an out-of-range version, an alias with a ``/`` or a file list that
    clashes, whatever key it came from. Raises :class:`InvalidName` or :class:`InvalidRecord`.
    """
    if isinstance(record, (ModelVersion, Tombstone)):
        check_name(record.name)
        check_version(record.version)
        if isinstance(record, ModelVersion):
            check_file_list(check_file_path(f.path) for f in record.files)
            _check_packs(record)
    elif isinstance(record, Alias):
        check_name(record.name)
        check_alias(record.alias)
        for number in (record.version, record.previous):
            if number is not None:
                check_version(number)
    elif isinstance(record, Event):
        check_name(record.name)
        # Aliases written before they became one segment stay readable history.
        if record.alias is not None:
            check_name(record.alias, "alias")
        for number in (record.version, record.previous):
            if number is not None:
                check_version(number)


def _check_packs(version: ModelVersion) -> None:
    """Every packed file lies inside a pack the manifest lists, and a manifest with packs says so
    with its schema (older releases must refuse it, not look for the packed files' own blobs)."""
    packs = {p.sha256: p.size for p in version.packs}
    if len(packs) != len(version.packs):
        raise InvalidRecord("a pack is listed twice")
    packed = [f for f in version.files if f.pack is not None]
    if (packs or packed) and version.schema < PACKED_SCHEMA:
        raise InvalidRecord(
            f"a manifest with packs must have schema {PACKED_SCHEMA} or later, not {version.schema}"
        )
    for entry in packed:
        size = packs.get(entry.pack or "")
        if size is None:
            raise InvalidRecord(f"file {entry.path!r} is in a pack the manifest does not list")
        if (entry.offset or 0) + entry.size > size:
            raise InvalidRecord(f"file {entry.path!r} ends beyond the end of its pack")


def to_json(record: Any) -> bytes:
    """Serialise a record to compact, sorted, UTF-8 JSON (stable bytes for the same record).

    A manifest, alias or event that no reader would accept is refused (:class:`InvalidRecord`)
    rather than written.
    """
    try:
        _check_fields(record)
    except (InvalidName, InvalidRecord) as exc:
        what = (
            f"the manifest of {record.name}"
            if isinstance(record, ModelVersion)
            else type(record).__name__
        )
        raise InvalidRecord(f"refusing to write {what}: {exc}") from None
    return json.dumps(converter.unstructure(record), sort_keys=True, separators=(",", ":")).encode()


def parse_json(data: bytes, *, source: str) -> dict[str, Any]:
    """Parse stored bytes into a JSON object, checking size and schema first."""
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidRecord(
            f"{source}: record is {len(data)} bytes, over the {MAX_RECORD_BYTES} limit"
        )
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRecord(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidRecord(f"{source}: JSON nested too deeply to be a record") from None
    if not isinstance(raw, dict):
        raise InvalidRecord(f"{source}: expected a JSON object")
    schema = raw.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise InvalidRecord(f"{source}: invalid schema number {schema!r}")
    if schema > SCHEMA:
        raise SchemaTooNew(
            f"{source} was written with record schema {schema}, newer than this modelshelf "
            f"understands ({SCHEMA}): upgrade with `pip install -U modelshelf`"
        )
    return raw


def structure(raw: dict[str, Any], cls: type[T], *, source: str) -> T:
    """Build a record from parsed JSON, turning any mismatch into :class:`InvalidRecord`."""
    try:
        record = converter.structure(raw, cls)
    except InvalidRecord:
        raise
    except RecursionError:
        raise InvalidRecord(f"{source}: not a valid {cls.__name__} (nested too deeply)") from None
    except Exception as exc:
        raise InvalidRecord(f"{source}: not a valid {cls.__name__} ({_first_cause(exc)})") from None
    try:
        _check_fields(record)
    except (InvalidName, InvalidRecord) as exc:
        raise InvalidRecord(f"{source}: not a valid {cls.__name__} ({exc})") from None
    return record


def from_json(data: bytes, cls: type[T], *, source: str) -> T:
    return structure(parse_json(data, source=source), cls, source=source)


def manifest_from_json(data: bytes, *, source: str) -> ModelVersion | Tombstone:
    """A stored manifest is either a live version or the tombstone of a deleted one."""
    raw = parse_json(data, source=source)
    kind = raw.get("kind", "version")
    if kind == "tombstone":
        return structure(raw, Tombstone, source=source)
    if kind != "version":
        raise InvalidRecord(f"{source}: unknown manifest kind {kind!r}")
    return structure(raw, ModelVersion, source=source)


def _first_cause(exc: BaseException) -> str:
    """Dig the innermost, most telling message out of a cattrs exception group."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _first_cause(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
