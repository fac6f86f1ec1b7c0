"""Import a `modelstore <https://github.com/operatorai/modelstore>`_ registry into a shelf.

Mapping: a domain becomes a model name, each live model a version (oldest first), each state an
alias on the newest model in that state. The registry is read through modelshelf's storage plugins
(:mod:`.source`), archives are unpacked by hand with every member checked (:mod:`.archives`), and
nothing stored is ever unpickled during the import: pickle-like files are listed as unsafe, and a
version whose serializer reads a pickle needs trust to load. Which serializer a model gets is
decided by :mod:`.managers`. Re-running an import only adds what
is new (models are matched by domain and model id). Versions are published through the public
:meth:`modelshelf.Shelf.publish`.
"""

from __future__ import annotations

import datetime as dt
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshelf.drafting import hash_files
from modelshelf.errors import InvalidName, KeyNotFound, ModelNotFound
from modelshelf.lineage import current_user
from modelshelf.records import FileEntry, GitInfo, Lineage, ModelVersion
from modelshelf.refs import check_alias
from modelshelf.storage import Storage

from . import managers
from .archives import extract_archive, is_pickle_like
from .report import AliasChange, ImportedModel, ImportReport, SkippedItem

if TYPE_CHECKING:
    from modelshelf.shelf import Shelf

from .source import (
    ARCHIVE_NAME,
    SourceDomain,
    SourceModel,
    find_root,
    finite,
    json_object,
    list_domains,
    open_source,
    public_location,
    scan_domain,
)

#: Lineage ``source.kind`` of imported versions; also how a re-run recognises them.
SOURCE_KIND = "modelstore"


def _lineage(model: SourceModel, domain: str, location: str) -> Lineage:
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
        source={
            "kind": SOURCE_KIND,
            "location": location,
            "domain": domain,
            "model_id": model.model_id,
        },
    )


def _draft(
    name: str,
    model: SourceModel,
    domain: str,
    location: str,
    files: Sequence[FileEntry],
    local: Mapping[str, Path],
    archive: str,
) -> tuple[ModelVersion, list[str], str | None]:
    """The manifest to publish, the pickle-like files in it, and why it fell back to files."""
    choice = managers.choose(model, local)
    unsafe = sorted(p for p, path in local.items() if is_pickle_like(p, path))
    params = json_object(model.meta.get("model")).get("parameters")
    record = {
        "model_id": model.model_id,
        "domain": domain,
        "created": model.created,
        "library": model.library,
        "states": list(model.states),
        "archive": archive,
        "unsafe_files": unsafe,
        "metadata": finite(model.meta),
    }
    draft = ModelVersion(
        name=name,
        version=1,
        created_at=dt.datetime.now(dt.UTC),
        created_by=current_user(),
        serializer=choice.serializer,
        framework=choice.framework,
        files=tuple(sorted(files, key=lambda f: f.path)),
        total_size=sum(f.size for f in files),
        lineage=_lineage(model, domain, location),
        metadata={"modelstore": record},
        params=finite(params) if isinstance(params, dict) else {},
        description=f"Imported from modelstore: domain {domain}, model {model.model_id}",
    )
    return draft, unsafe, choice.fallback


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
    # Deleted versions keep their numbers: the catalog lists every claimed one.
    claimed = max(target.catalog.version_numbers(name), default=0)
    return found, claimed


def import_modelstore(
    source: str, target: Shelf, *, dry_run: bool = False, **options: Any
) -> ImportReport:
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
    root = find_root(storage, location)
    domains, skipped = list_domains(storage, root)
    imported: list[ImportedModel] = []
    aliases: list[AliasChange] = []
    notes: list[str] = []
    for domain in domains:
        scanned = scan_domain(storage, root, domain)
        skipped.extend(scanned.skipped)
        notes.extend(scanned.notes)
        name = domain
        existing, claimed = _existing_imports(target, name)
        refs: dict[str, int] = {}  # model id -> version on the shelf, for aliases
        fallbacks: dict[str, list[str]] = {}  # why a model fell back to files -> its libraries
        for model in scanned.models:
            if model.model_id in existing:
                refs[model.model_id] = existing[model.model_id]
                skipped.append(
                    SkippedItem(
                        "model",
                        domain,
                        model.model_id,
                        f"already imported as {name}:{existing[model.model_id]}",
                    )
                )
                continue
            if model.archive is None:
                skipped.append(
                    SkippedItem(
                        "model",
                        domain,
                        model.model_id,
                        f"no {ARCHIVE_NAME} found for it (modelstore recorded {model.recorded_archive or 'none'})",
                    )
                )
                continue
            if dry_run:
                claimed += 1
                refs[model.model_id] = claimed
                serializer, fallback = managers.planned_serializer(model)
                imported.append(
                    ImportedModel(
                        domain,
                        model.model_id,
                        name,
                        f"{name}:{claimed}",
                        claimed,
                        serializer,
                        model.library,
                        model.created,
                    )
                )
            else:
                result = _import_model(storage, location, target, name, domain, model)
                if isinstance(result, SkippedItem):
                    skipped.append(result)
                    continue
                imported.append(result[0])
                refs[model.model_id] = result[0].version
                fallback = result[1]
            if fallback is not None:
                fallbacks.setdefault(fallback, []).append(model.library or "?")
        notes.extend(_fallback_notes(domain, fallbacks, dry_run=dry_run))
        aliases.extend(
            _mirror_states(target, name, domain, scanned, refs, skipped, dry_run=dry_run)
        )
    return ImportReport(
        location, target.url, dry_run, tuple(imported), tuple(aliases), tuple(skipped), tuple(notes)
    )


def _fallback_notes(
    domain: str, fallbacks: Mapping[str, list[str]], *, dry_run: bool
) -> Iterable[str]:
    verb = "would be imported" if dry_run else "imported"
    for reason, libraries in fallbacks.items():
        kinds = ", ".join(sorted(set(libraries)))
        yield (
            f"{domain}: {len(libraries)} {kinds} model(s) {verb} as plain files ({managers.FILES} "
            f"serializer; load returns their directory): {reason}. To load them as {kinds} "
            "objects instead, make the serializer available, then delete those versions and import again"
        )


def _import_model(
    storage: Storage, location: str, target: Shelf, name: str, domain: str, model: SourceModel
) -> tuple[ImportedModel, str | None] | SkippedItem:
    """Publish one model (or say why not), and why it fell back to plain files, if it did."""
    assert model.archive is not None
    with tempfile.TemporaryDirectory(prefix="modelshelf-import-") as scratch:
        archive = Path(scratch) / ARCHIVE_NAME
        try:
            with open(archive, "wb") as out:
                for chunk in storage.read_stream(model.archive):
                    out.write(chunk)
        except KeyNotFound:
            return SkippedItem(
                "model", domain, model.model_id, f"{model.archive} vanished while importing"
            )
        try:
            local, refused = extract_archive(archive, Path(scratch) / "files")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            return SkippedItem(
                "model", domain, model.model_id, f"unreadable archive {model.archive} ({exc})"
            )
        if refused:
            return SkippedItem(
                "model",
                domain,
                model.model_id,
                f"unsafe archive {model.archive}, nothing imported: member "
                + "; member ".join(refused),
            )
        if not local:
            return SkippedItem("model", domain, model.model_id, f"{model.archive} holds no files")
        files, blobs = hash_files(local)
        draft, unsafe, fallback = _draft(name, model, domain, location, files, local, model.archive)
        published = target.publish(draft, blobs)
    imported = ImportedModel(
        domain,
        model.model_id,
        name,
        published.ref,
        published.version,
        published.serializer.name,
        model.library,
        model.created,
        len(published.files),
        published.total_size,
        tuple(unsafe),
    )
    return imported, fallback


def _mirror_states(
    target: Shelf,
    name: str,
    domain: str,
    scanned: SourceDomain,
    refs: Mapping[str, int],
    skipped: list[SkippedItem],
    *,
    dry_run: bool,
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
            skipped.append(
                SkippedItem(
                    "state",
                    domain,
                    state,
                    f"its newest model {latest} was not imported (see above)",
                )
            )
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


__all__ = ["SOURCE_KIND", "import_modelstore", "public_location"]
