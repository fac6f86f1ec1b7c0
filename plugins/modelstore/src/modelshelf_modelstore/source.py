"""Reading a modelstore registry: its layout, listings and metadata, through modelshelf's storage.

modelstore 0.0.82 keeps everything below ``<root>/operatorai-model-store/`` (``<root>`` is the
``root_directory`` of ``ModelStore.from_file_system`` or the ``root_prefix`` in a bucket)::

    domains/<domain>.json                              copy of the latest model's metadata
    model_states/<state>.json                          {"state_name": ..., "created": ...}
    <domain>/versions/<model_id>.json                  metadata of every live model
    <domain>/versions/<state>/<model_id>.json          state membership: a copy of that metadata
    <domain>/versions/modelstore-deleted/<id>.json     what ``delete_model`` leaves of a model
    <domain>/<YYYY.MM.DD-HH.MM.SS>/<model_id>/artifacts.tar.gz   the model's files

The registry is read through the installed storage plugin for its scheme (never through
modelstore or an SDK) and only read. Its metadata is read as found: any field may hold another
type than modelstore writes (an older or newer modelstore, a hand edit), and a wrong type means
"not recorded".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
from modelshelf.errors import InvalidName, KeyNotFound, ModelshelfError, NotFound, UnknownScheme
from modelshelf.known_plugins import scheme_of, storage_plugin_for
from modelshelf.plugins import explain_missing_scheme, get_registry
from modelshelf.refs import check_name
from modelshelf.storage import Storage
from modelshelf.transfer import run_parallel

from .report import SkippedItem

#: The folder modelstore puts below its root directory / bucket prefix.
MODELSTORE_ROOT = "operatorai-model-store"
#: modelstore's reserved state holding what ``delete_model`` leaves behind.
DELETED_STATE = "modelstore-deleted"
ARCHIVE_NAME = "artifacts.tar.gz"
_CREATED_FORMAT = "%Y/%m/%d/%H:%M:%S"
_ARCHIVE_FOLDER = re.compile(r"\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}")


def public_location(url: str) -> str:
    """The source location without credentials: no user info, query string or fragment."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def open_source(source: str, **options: Any) -> Storage:
    """A view of ``source`` through the installed storage plugin for its scheme (only read)."""
    if not isinstance(source, str) or not source:
        raise ModelshelfError(
            "the modelstore location must be a path or a URL like s3://bucket/prefix"
        )
    scheme = scheme_of(source)
    entry = get_registry().storages().get(scheme)
    if entry is None:
        hint = storage_plugin_for(scheme)
        explained = explain_missing_scheme(scheme, hint)
        if explained is not None:
            raise UnknownScheme(
                f"cannot read the modelstore registry at {public_location(source)}: {explained}"
            )
        how = (
            f"install it with `pip install {hint}`"
            if hint
            else "install the plugin for this storage"
        )
        raise UnknownScheme(f"no storage plugin reads {scheme}:// locations: {how}")
    return entry.factory(source, **options)


def find_root(storage: Storage, shown: str) -> str:
    """The key prefix of modelstore's own folder: ``operatorai-model-store/`` or ``""``."""
    for prefix in (f"{MODELSTORE_ROOT}/", ""):
        for _ in storage.list(f"{prefix}domains/"):
            return prefix
    raise NotFound(
        f"no modelstore registry at {shown}: expected {MODELSTORE_ROOT}/domains/ below it; give "
        "the root_directory (or s3://bucket/root_prefix) the ModelStore was created with"
    )


def read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(storage.read(key).data)
    except (KeyNotFound, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def json_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (see the module docstring)."""
    return value if isinstance(value, dict) else {}


def finite(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats (which modelstore may have written) become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


@attrs.define
class SourceModel:
    model_id: str
    meta: dict[str, Any]
    info_modified: dt.datetime | None
    archive: str | None = None
    states: list[str] = attrs.field(factory=list)
    #: The model ``domains/<domain>.json`` names: the last one uploaded.
    latest: bool = False

    @property
    def created(self) -> str | None:
        code = self.meta.get("code")
        created = code.get("created") if isinstance(code, dict) else None
        return created if isinstance(created, str) else None

    @property
    def recorded_archive(self) -> str:
        """Where modelstore's metadata says the archive is (a path or a bucket key), or ""."""
        storage = self.meta.get("storage")
        where = (
            (storage.get("path") or storage.get("prefix")) if isinstance(storage, dict) else None
        )
        return where.replace("\\", "/") if isinstance(where, str) else ""

    @property
    def library(self) -> str | None:
        library = json_object(json_object(self.meta.get("model")).get("model_type")).get("library")
        return library if isinstance(library, str) else None

    def when(self) -> tuple[dt.datetime, float]:
        """Creation time as modelstore recorded it (one-second resolution), then the metadata
        file's modification time (written once, at upload: nanoseconds on a filesystem, but
        seconds on S3)."""
        try:
            created = dt.datetime.strptime(self.created or "", _CREATED_FORMAT)
        except ValueError:
            created = dt.datetime.min
        return created, self.info_modified.timestamp() if self.info_modified else 0.0

    def order_key(self) -> tuple[Any, ...]:
        # On a tie, the model the domain file names was uploaded last; the rest is arbitrary
        # but stable (archive folder, then id), and reported.
        return (*self.when(), self.latest, self.archive or "", self.model_id)


@attrs.define
class SourceDomain:
    domain: str
    models: list[SourceModel]
    #: state name -> model ids in that state (live models only)
    states: dict[str, list[str]]
    skipped: list[SkippedItem]
    notes: list[str] = attrs.field(factory=list)


def scan_domain(storage: Storage, root: str, domain: str) -> SourceDomain:
    """Everything modelstore keeps about one domain, from one recursive listing."""
    prefix = f"{root}{domain}/"
    main: dict[str, Any] = {}
    state_members: dict[str, set[str]] = {}
    archives: dict[str, list[str]] = {}
    for info in storage.list(prefix):
        parts = info.key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[0] == "versions" and parts[1].endswith(".json"):
            main[parts[1][: -len(".json")]] = info
        elif len(parts) == 3 and parts[0] == "versions" and parts[2].endswith(".json"):
            state_members.setdefault(parts[1], set()).add(parts[2][: -len(".json")])
        elif len(parts) == 3 and parts[2] == ARCHIVE_NAME and _ARCHIVE_FOLDER.fullmatch(parts[0]):
            archives.setdefault(parts[1], []).append(info.key)
    skipped: list[SkippedItem] = []
    models: list[SourceModel] = []
    # One small read per model, as modelstore does; in parallel, since on a bucket each is a request.
    items = sorted(main.items())
    metas = run_parallel(lambda item: read_json(storage, item[1].key), items, max_workers=16)
    for (model_id, info), meta in zip(items, metas, strict=True):
        model = (meta or {}).get("model")
        if not isinstance(model, dict):
            skipped.append(
                SkippedItem("model", domain, model_id, f"{info.key} is not modelstore metadata")
            )
            continue
        if model.get("model_id") != model_id or model.get("domain") != domain:
            skipped.append(
                SkippedItem(
                    "model",
                    domain,
                    model_id,
                    f"{info.key} describes {model.get('domain')!r}/{model.get('model_id')!r}, not this model",
                )
            )
            continue
        assert meta is not None
        found = SourceModel(model_id, meta, info.modified)
        found.archive = pick_archive(archives.get(model_id, []), root, found.recorded_archive)
        models.append(found)
    live = {m.model_id for m in models}
    for model_id in sorted(state_members.get(DELETED_STATE, set()) - set(main)):
        skipped.append(
            SkippedItem("model", domain, model_id, "deleted in modelstore (delete_model)")
        )
    states: dict[str, list[str]] = {}
    for state, members in sorted(state_members.items()):
        if state == DELETED_STATE:
            continue
        states[state] = sorted(members & live)
    latest = json_object(
        json_object(read_json(storage, f"{root}domains/{domain}.json")).get("model")
    ).get("model_id")
    for model in models:
        model.latest = model.model_id == latest
    models.sort(key=SourceModel.order_key)
    notes: list[str] = []
    by_time: dict[tuple[dt.datetime, float], list[str]] = {}
    for model in models:
        by_time.setdefault(model.when(), []).append(model.model_id)
    for ids in by_time.values():
        if len(ids) > 1:
            notes.append(
                f"{domain}: models {', '.join(ids)} carry the same creation time (modelstore keeps "
                "seconds only); their version order among themselves is a best guess"
            )
    for model in models:
        model.states = sorted(s for s, members in states.items() if model.model_id in members)
    return SourceDomain(domain, models, states, skipped, notes)


def pick_archive(candidates: list[str], root: str, recorded: str) -> str | None:
    """The archive the metadata points at (modelstore records an absolute path or a bucket key)."""
    for key in candidates:
        if recorded.endswith(f"{MODELSTORE_ROOT}/{key[len(root) :]}"):
            return key
    # A moved store: the recorded path is stale, but one archive for this id is unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def list_domains(storage: Storage, root: str) -> tuple[list[str], list[SkippedItem]]:
    prefix = f"{root}domains/"
    names: list[str] = []
    skipped: list[SkippedItem] = []
    for info in storage.list(prefix):
        if not info.key.endswith(".json"):
            continue
        domain = info.key[len(prefix) : -len(".json")]
        try:
            check_name(domain, "modelstore domain")
        except InvalidName as exc:
            # Never used to build a key or a name: it would not be a valid model name.
            skipped.append(
                SkippedItem("domain", domain, domain, f"not a valid modelshelf model name ({exc})")
            )
            continue
        names.append(domain)
    return sorted(names), skipped


__all__ = [
    "ARCHIVE_NAME",
    "DELETED_STATE",
    "MODELSTORE_ROOT",
    "SourceDomain",
    "SourceModel",
    "find_root",
    "finite",
    "json_object",
    "list_domains",
    "open_source",
    "public_location",
    "read_json",
    "scan_domain",
]
