"""Import a `modelstore <https://github.com/operatorai/modelstore>`_ registry into a shelf.

modelstore 0.0.82 keeps everything below ``<root>/operatorai-model-store/`` (``<root>`` is the
``root_directory`` of ``ModelStore.from_file_system`` or the ``root_prefix`` in a bucket)::

    domains/<domain>.json                              copy of the latest model's metadata
    model_states/<state>.json                          {"state_name": ..., "created": ...}
    <domain>/versions/<model_id>.json                  metadata of every live model
    <domain>/versions/<state>/<model_id>.json          state membership: a copy of that metadata
    <domain>/versions/modelstore-deleted/<id>.json     what ``delete_model`` leaves of a model
    <domain>/<YYYY.MM.DD-HH.MM.SS>/<model_id>/artifacts.tar.gz   the model's files

Mapping: a domain becomes a model name, each live model a version (oldest first), each state an
alias on the newest model in that state. Everything is read through modelshelf's own storage
plugins (never through modelstore or an SDK), archives are unpacked by hand with every member
checked, and nothing stored is ever unpickled: pickle-based files are imported as files and marked
unsafe. Re-running an import only adds what is new (models are matched by domain and model id).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from .errors import (
    InvalidName,
    KeyNotFound,
    ModelNotFound,
    ModelshelfError,
    NotFound,
    UnknownScheme,
)
from .drafting import hash_files
from .lineage import current_user, package_version
from .plugins import get_registry
from .records import FrameworkInfo, GitInfo, Lineage, ModelVersion, SerializerInfo
from .refs import check_alias, check_file_path, check_name
from .storage import Storage
from .transfer import run_parallel

if TYPE_CHECKING:

    from .shelf import Shelf

#: The folder modelstore puts below its root directory / bucket prefix.
MODELSTORE_ROOT = "operatorai-model-store"
#: modelstore's reserved state holding what ``delete_model`` leaves behind.
DELETED_STATE = "modelstore-deleted"
ARCHIVE_NAME = "artifacts.tar.gz"
#: Lineage ``source.kind`` of imported versions; also how a re-run recognises them.
SOURCE_KIND = "modelstore"
#: The joblib serializer of modelshelf-sklearn: same file name as modelstore's sklearn manager.
SKLEARN_JOBLIB = "sklearn-joblib"
SKLEARN_JOBLIB_FILE = "model.joblib"

#: Suffixes of files whose loading runs pickle (or a pickle-based format).
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".jbl", ".pt", ".pth", ".ckpt", ".sav", ".dill", ".p"}
)
_CREATED_FORMAT = "%Y/%m/%d/%H:%M:%S"
_ARCHIVE_FOLDER = re.compile(r"\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}")


# --- the report ------------------------------------------------------------------------------


@attrs.frozen
class ImportedModel:
    """A modelstore model that was published (or, in a dry run, would be) as a version."""

    domain: str
    model_id: str
    name: str
    #: ``name:N``; in a dry run the number the next publish would most likely claim.
    ref: str
    version: int
    serializer: str
    library: str | None
    created: str | None
    files: int = 0
    size: int = 0
    unsafe_files: tuple[str, ...] = ()


@attrs.frozen
class AliasChange:
    """A modelstore state mirrored as an alias: ``name@alias -> ref``."""

    name: str
    alias: str
    state: str
    model_id: str
    ref: str
    #: The version the alias pointed to before, ``None`` when it did not exist.
    previous: int | None
    #: ``False`` when the alias already pointed there (nothing was written).
    changed: bool


@attrs.frozen
class SkippedItem:
    """Something not imported, and why."""

    kind: str  # "domain", "model", "state", "source"
    domain: str | None
    item: str
    reason: str


@attrs.frozen
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    source: str
    target: str
    dry_run: bool
    imported: tuple[ImportedModel, ...] = ()
    aliases: tuple[AliasChange, ...] = ()
    skipped: tuple[SkippedItem, ...] = ()
    #: Warnings that are not skips, e.g. creation times too coarse to order models for sure.
    notes: tuple[str, ...] = ()

    def refs(self) -> dict[str, dict[str, str]]:
        """Per domain, modelstore model id -> the version ref it was imported as."""
        found: dict[str, dict[str, str]] = {}
        for model in self.imported:
            found.setdefault(model.domain, {})[model.model_id] = model.ref
        return found

    def states(self) -> dict[str, dict[str, str]]:
        """Per model name, modelstore state -> the ``name@alias`` it became."""
        found: dict[str, dict[str, str]] = {}
        for change in self.aliases:
            found.setdefault(change.name, {})[change.state] = f"{change.name}@{change.alias}"
        return found

    def lines(self) -> list[str]:
        """A one-line-per-item human summary, ending with the totals."""
        verb = "would import" if self.dry_run else "imported"
        out: list[str] = []
        for m in self.imported:
            unsafe = f", unsafe: {', '.join(m.unsafe_files)}" if m.unsafe_files else ""
            files = "" if self.dry_run else f", {m.files} files"
            out.append(f"{verb} {m.ref} <- {m.domain}/{m.model_id} ({m.serializer}{files}{unsafe})")
        for a in self.aliases:
            if not a.changed:
                what = "alias unchanged"
            elif self.dry_run:
                what = "would set alias"
            else:
                what = "set alias"
            moved = f" (was {a.name}:{a.previous})" if a.changed and a.previous is not None else ""
            out.append(f"{what} {a.name}@{a.alias} -> {a.ref}{moved} <- state {a.state}")
        for s in self.skipped:
            where = f"{s.domain}/" if s.domain and s.kind != "domain" else ""
            out.append(f"skipped {s.kind} {where}{s.item}: {s.reason}")
        out.extend(f"note: {n}" for n in self.notes)
        set_count = sum(1 for a in self.aliases if a.changed)
        out.append(
            f"{len(self.imported)} model(s) {verb}, {set_count} alias(es) "
            f"{'to set' if self.dry_run else 'set'}, {len(self.skipped)} item(s) skipped"
            f"{' (dry run: nothing written)' if self.dry_run else ''}"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# --- reading the source ----------------------------------------------------------------------


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
    """A read-only view of ``source`` through the installed storage plugin for its scheme."""
    from .shelf import KNOWN_STORAGE_PLUGINS, scheme_of

    if not isinstance(source, str) or not source:
        raise ModelshelfError("the modelstore location must be a path or a URL like s3://bucket/prefix")
    scheme = scheme_of(source)
    storages = get_registry().storages()
    entry = storages.get(scheme)
    if entry is None:
        hint = KNOWN_STORAGE_PLUGINS.get(scheme)
        how = f"install it with `pip install {hint}`" if hint else "install the plugin for this storage"
        raise UnknownScheme(f"no storage plugin reads {scheme}:// locations: {how}")
    return entry.factory(source, **options)


def _find_root(storage: Storage, shown: str) -> str:
    """The key prefix of modelstore's own folder: ``operatorai-model-store/`` or ``""``."""
    for prefix in (f"{MODELSTORE_ROOT}/", ""):
        for _ in storage.list(f"{prefix}domains/"):
            return prefix
    raise NotFound(
        f"no modelstore registry at {shown}: expected {MODELSTORE_ROOT}/domains/ below it; give "
        "the root_directory (or s3://bucket/root_prefix) the ModelStore was created with"
    )


def _read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(storage.read(key).data)
    except (KeyNotFound, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one.

    modelstore's metadata is read as found: any field may hold another type than modelstore
    writes (an older or newer modelstore, a hand edit), and a wrong type means "not recorded".
    """
    return value if isinstance(value, dict) else {}


def _finite(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats (which modelstore may have written) become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@attrs.define
class _SourceModel:
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
        where = (storage.get("path") or storage.get("prefix")) if isinstance(storage, dict) else None
        return where.replace("\\", "/") if isinstance(where, str) else ""

    @property
    def library(self) -> str | None:
        library = _object(_object(self.meta.get("model")).get("model_type")).get("library")
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
class _SourceDomain:
    domain: str
    models: list[_SourceModel]
    #: state name -> model ids in that state (live models only)
    states: dict[str, list[str]]
    skipped: list[SkippedItem]
    notes: list[str] = attrs.field(factory=list)


def _scan_domain(storage: Storage, root: str, domain: str) -> _SourceDomain:
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
    models: list[_SourceModel] = []
    # One small read per model, as modelstore does; in parallel, since on a bucket each is a request.
    items = sorted(main.items())
    metas = run_parallel(lambda item: _read_json(storage, item[1].key), items, max_workers=16)
    for (model_id, info), meta in zip(items, metas, strict=True):
        model = (meta or {}).get("model")
        if not isinstance(model, dict):
            skipped.append(SkippedItem("model", domain, model_id, f"{info.key} is not modelstore metadata"))
            continue
        if model.get("model_id") != model_id or model.get("domain") != domain:
            skipped.append(SkippedItem(
                "model", domain, model_id,
                f"{info.key} describes {model.get('domain')!r}/{model.get('model_id')!r}, not this model",
            ))
            continue
        assert meta is not None
        found = _SourceModel(model_id, meta, info.modified)
        found.archive = _pick_archive(archives.get(model_id, []), root, found.recorded_archive)
        models.append(found)
    live = {m.model_id for m in models}
    for model_id in sorted(state_members.get(DELETED_STATE, set()) - set(main)):
        skipped.append(SkippedItem("model", domain, model_id, "deleted in modelstore (delete_model)"))
    states: dict[str, list[str]] = {}
    for state, members in sorted(state_members.items()):
        if state == DELETED_STATE:
            continue
        states[state] = sorted(members & live)
    latest = _object(_object(_read_json(storage, f"{root}domains/{domain}.json")).get("model")).get("model_id")
    for model in models:
        model.latest = model.model_id == latest
    models.sort(key=_SourceModel.order_key)
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
    return _SourceDomain(domain, models, states, skipped, notes)


def _pick_archive(candidates: list[str], root: str, recorded: str) -> str | None:
    """The archive the metadata points at (modelstore records an absolute path or a bucket key)."""
    for key in candidates:
        if recorded.endswith(f"{MODELSTORE_ROOT}/{key[len(root):]}"):
            return key
    # A moved store: the recorded path is stale, but one archive for this id is unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def _list_domains(storage: Storage, root: str) -> tuple[list[str], list[SkippedItem]]:
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
            skipped.append(SkippedItem("domain", domain, domain, f"not a valid modelshelf model name ({exc})"))
            continue
        names.append(domain)
    return sorted(names), skipped


# --- archives --------------------------------------------------------------------------------


def _member_problem(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why a tar member must not be extracted into ``dest`` (a resolved directory), or None."""
    name = member.name
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    if not member.isreg():
        return "is not a regular file (device, fifo or other special member)"
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "contains '..'"
    try:
        check_file_path("/".join(parts))
    except ModelshelfError as exc:
        return str(exc)
    target = dest.joinpath(*parts).resolve()
    if not target.is_relative_to(dest):
        return "would land outside the extraction directory"
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4 / 3.10.12
    if data_filter is not None:
        try:
            data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            return f"refused by tarfile's data filter ({exc})"
    return None


def extract_archive(archive: Path, dest: Path) -> tuple[dict[str, Path], list[str]]:
    """Extract the regular files of a ``.tar.gz`` into ``dest``, checking every member first.

    Returns (relative path -> extracted file, refused members with reasons). Links, devices,
    absolute paths, ``..`` and anything resolving outside ``dest`` are refused and never written;
    files are created exclusively (``O_EXCL | O_NOFOLLOW``), so no member can write through a path
    another member created. Never calls ``extractall``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    real = dest.resolve()
    files: dict[str, Path] = {}
    refused: list[str] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isdir():
                continue  # folders are created for the files below them
            problem = _member_problem(member, real)
            if problem is not None:
                refused.append(f"{member.name!r} {problem}")
                continue
            relative = "/".join(p for p in member.name.split("/") if p not in ("", "."))
            if relative in files:
                refused.append(f"{member.name!r} appears twice in the archive")
                continue
            target = real.joinpath(*relative.split("/"))
            parent = target.parent
            try:
                # Only folders made here exist below dest (no member ever creates a link), and
                # the resolved target was checked above; this re-check guards against surprises.
                parent.mkdir(parents=True, exist_ok=True)
                if parent.resolve() != parent or not parent.is_relative_to(real):
                    refused.append(f"{member.name!r} would be written through a link")
                    continue
                source = tar.extractfile(member)
                if source is None:
                    refused.append(f"{member.name!r} has no readable content")
                    continue
                fd = os.open(target, flags, 0o644)
            except OSError as exc:
                refused.append(f"{member.name!r} cannot be created ({exc.strerror})")
                continue
            with source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            files[relative] = target
    return files, refused


def is_pickle_like(relative: str, path: Path) -> bool:
    """Whether loading this file would run pickle: by suffix, pickle magic, or a torch zip."""
    if PurePosixPath(relative).suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5 header
        return True
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zipped:
                return any(n.endswith(".pkl") for n in zipped.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    return False


# --- building versions -----------------------------------------------------------------------


def _lineage(model: _SourceModel, domain: str, location: str) -> Lineage:
    """Where the model was trained (as modelstore recorded it) and where it was imported from."""
    code = model.meta.get("code") if isinstance(model.meta.get("code"), dict) else {}
    assert isinstance(code, dict)
    runtime = code.get("runtime")
    python = runtime.split(":", 1)[-1] if isinstance(runtime, str) and runtime else "unknown"
    deps = code.get("dependencies") if isinstance(code.get("dependencies"), dict) else {}
    assert isinstance(deps, dict)
    packages = {str(k): str(v) for k, v in deps.items() if v is not None}
    if isinstance(model.meta.get("modelstore"), str):
        packages["modelstore"] = model.meta["modelstore"]
    git_meta = code.get("git")
    git = None
    if isinstance(git_meta, dict) and git_meta:
        dirty = git_meta.get("local_changes")
        git = GitInfo(
            commit=str(git_meta["sha"]) if git_meta.get("sha") else None,
            branch=str(git_meta["branch"]) if git_meta.get("branch") else None,
            dirty=dirty if isinstance(dirty, bool) else None,
        )
    return Lineage(
        python=python,
        platform="unknown (not recorded by modelstore)",
        packages=packages,
        git=git,
        source={"kind": SOURCE_KIND, "location": location, "domain": domain, "model_id": model.model_id},
    )


def _serializer_for(model: _SourceModel, files: Mapping[str, Path]) -> tuple[SerializerInfo, FrameworkInfo | None]:
    serializers = get_registry().serializers()
    deps = _object(_object(model.meta.get("code")).get("dependencies"))
    model_type = _object(_object(model.meta.get("model")).get("model_type"))
    joblib_entry = serializers.get(SKLEARN_JOBLIB)
    if model.library == "sklearn" and SKLEARN_JOBLIB_FILE in files and joblib_entry is not None:
        serializer = joblib_entry.serializer
        info = SerializerInfo(
            name=serializer.name,
            distribution=joblib_entry.distribution,
            distribution_version=joblib_entry.distribution_version,
            format=serializer.format,
            safe=False,
            details={
                "file": SKLEARN_JOBLIB_FILE,
                "class": model_type.get("type") if isinstance(model_type.get("type"), str) else None,
                "joblib_version": str(deps.get("joblib") or package_version("joblib") or "unknown"),
            },
        )
        version = deps.get("sklearn") or deps.get("scikit-learn")
        return info, FrameworkInfo("sklearn", str(version or "unknown"))
    entry = serializers["files"]
    info = SerializerInfo(
        name="files",
        distribution=entry.distribution,
        distribution_version=entry.distribution_version,
        format=entry.serializer.format,
        safe=True,
        details={"single_file": None},
    )
    return info, None


def _draft(
    name: str, model: _SourceModel, domain: str, location: str, files: Any, local: Mapping[str, Path],
    archive: str,
) -> tuple[ModelVersion, list[str]]:
    serializer, framework = _serializer_for(model, local)
    unsafe = sorted(p for p, path in local.items() if is_pickle_like(p, path))
    params = _object(model.meta.get("model")).get("parameters")
    record = {
        "model_id": model.model_id,
        "domain": domain,
        "created": model.created,
        "library": model.library,
        "states": list(model.states),
        "archive": archive,
        "unsafe_files": unsafe,
        "metadata": _finite(model.meta),
    }
    draft = ModelVersion(
        name=name,
        version=1,
        created_at=dt.datetime.now(dt.UTC),
        created_by=current_user(),
        serializer=serializer,
        framework=framework,
        files=tuple(sorted(files, key=lambda f: f.path)),
        total_size=sum(f.size for f in files),
        lineage=_lineage(model, domain, location),
        metadata={"modelstore": record},
        params=_finite(params) if isinstance(params, dict) else {},
        description=f"Imported from modelstore: domain {domain}, model {model.model_id}",
    )
    return draft, unsafe


def _existing_imports(target: Shelf, name: str) -> tuple[dict[str, int], int]:
    """modelstore model id -> version already imported, and the highest claimed version number."""
    try:
        versions = target.versions(name)
    except ModelNotFound:
        return {}, 0
    found: dict[str, int] = {}
    for version in versions:
        source = version.lineage.source or {}
        if source.get("kind") == SOURCE_KIND and isinstance(source.get("model_id"), str):
            found.setdefault(source["model_id"], version.version)
    claimed = max(target.catalog.version_numbers(name), default=0)
    return found, claimed


def import_modelstore(source: str, target: Shelf, *, dry_run: bool = False, **options: Any) -> ImportReport:
    """Import every domain, model and state of the modelstore registry at ``source`` into ``target``.

    ``source`` is the ``root_directory`` given to ``ModelStore.from_file_system`` (or its
    ``operatorai-model-store`` folder itself), or ``s3://bucket/root_prefix`` for
    ``ModelStore.from_aws_s3``; ``options`` go to the source's storage plugin (endpoint,
    credentials...). Nothing is ever written to the source. With ``dry_run`` nothing is written to
    ``target`` either, and archives are not downloaded: the report lists what would be imported.

    Domains become model names, live models versions in creation order (the modelstore metadata is
    kept in ``metadata["modelstore"]``), states aliases on the newest model in that state. Deleted
    models, invalid names and unsafe archives are skipped and reported. Models already imported
    (matched by domain and model id through the lineage source) are not imported again.
    """
    location = public_location(source)
    storage = open_source(source, **options)
    try:
        return _import(storage, location, target, dry_run=dry_run)
    finally:
        storage.close()


def _import(storage: Storage, location: str, target: Shelf, *, dry_run: bool) -> ImportReport:
    root = _find_root(storage, location)
    domains, skipped = _list_domains(storage, root)
    imported: list[ImportedModel] = []
    aliases: list[AliasChange] = []
    notes: list[str] = []
    for domain in domains:
        scanned = _scan_domain(storage, root, domain)
        skipped.extend(scanned.skipped)
        notes.extend(scanned.notes)
        name = domain
        existing, claimed = _existing_imports(target, name)
        refs: dict[str, int] = {}  # model id -> version on the shelf, for aliases
        for model in scanned.models:
            if model.model_id in existing:
                refs[model.model_id] = existing[model.model_id]
                skipped.append(SkippedItem(
                    "model", domain, model.model_id, f"already imported as {name}:{existing[model.model_id]}"
                ))
                continue
            if model.archive is None:
                skipped.append(SkippedItem(
                    "model", domain, model.model_id,
                    f"no {ARCHIVE_NAME} found for it (modelstore recorded {model.recorded_archive or 'none'})",
                ))
                continue
            if dry_run:
                claimed += 1
                refs[model.model_id] = claimed
                imported.append(ImportedModel(
                    domain, model.model_id, name, f"{name}:{claimed}", claimed,
                    _planned_serializer(model), model.library, model.created,
                ))
                continue
            result = _import_model(storage, location, target, name, domain, model)
            if isinstance(result, SkippedItem):
                skipped.append(result)
            else:
                refs[model.model_id] = result.version
                imported.append(result)
        aliases.extend(_mirror_states(target, name, domain, scanned, refs, skipped, dry_run=dry_run))
    return ImportReport(
        location, target.url, dry_run, tuple(imported), tuple(aliases), tuple(skipped), tuple(notes)
    )


def _planned_serializer(model: _SourceModel) -> str:
    # Without the archive the file list is unknown: modelstore's sklearn manager always writes
    # model.joblib, which is what decides for the joblib serializer.
    if model.library == "sklearn" and SKLEARN_JOBLIB in get_registry().serializers():
        return SKLEARN_JOBLIB
    return "files"


def _import_model(
    storage: Storage, location: str, target: Shelf, name: str, domain: str, model: _SourceModel
) -> ImportedModel | SkippedItem:
    assert model.archive is not None
    with tempfile.TemporaryDirectory(prefix="modelshelf-import-") as scratch:
        archive = Path(scratch) / ARCHIVE_NAME
        try:
            with open(archive, "wb") as out:
                for chunk in storage.read_stream(model.archive):
                    out.write(chunk)
        except KeyNotFound:
            return SkippedItem("model", domain, model.model_id, f"{model.archive} vanished while importing")
        try:
            local, refused = extract_archive(archive, Path(scratch) / "files")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            return SkippedItem("model", domain, model.model_id, f"unreadable archive {model.archive} ({exc})")
        if refused:
            return SkippedItem(
                "model", domain, model.model_id,
                f"unsafe archive {model.archive}, nothing imported: member " + "; member ".join(refused),
            )
        if not local:
            return SkippedItem("model", domain, model.model_id, f"{model.archive} holds no files")
        files, blobs = hash_files(local)
        draft, unsafe = _draft(name, model, domain, location, files, local, model.archive)
        published = target.publish(draft, blobs)
    return ImportedModel(
        domain, model.model_id, name, published.ref, published.version, published.serializer.name,
        model.library, model.created, len(published.files), published.total_size, tuple(unsafe),
    )


def _mirror_states(
    target: Shelf, name: str, domain: str, scanned: _SourceDomain, refs: Mapping[str, int],
    skipped: list[SkippedItem], *, dry_run: bool,
) -> Iterable[AliasChange]:
    order = {m.model_id: i for i, m in enumerate(scanned.models)}
    current: dict[str, int | None] | None = None
    for state, members in scanned.states.items():
        if not members:
            continue
        try:
            alias = check_alias(state)
        except InvalidName as exc:
            skipped.append(SkippedItem("state", domain, state, f"not a valid alias ({exc})"))
            continue
        latest = max(members, key=order.__getitem__)
        version = refs.get(latest)
        if version is None:
            skipped.append(SkippedItem(
                "state", domain, state, f"its newest model {latest} was not imported (see above)"
            ))
            continue
        if current is None:
            try:
                current = {a: rec.version for a, rec in target.aliases(name).items()}
            except ModelNotFound:
                current = {}
        previous = current.get(alias)
        changed = previous != version
        if changed and not dry_run:
            target.set_alias(name, alias, version)
        yield AliasChange(name, alias, state, latest, f"{name}:{version}", previous, changed)


# --- command line ----------------------------------------------------------------------------


__all__ = [
    "AliasChange",
    "ImportReport",
    "ImportedModel",
    "SkippedItem",
    "extract_archive",
    "import_modelstore",
    "is_pickle_like",
    "public_location",
]
