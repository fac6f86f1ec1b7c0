"""Moving aliases and deleting versions, which must keep one invariant together: no alias is
ever left pointing at a deleted version.

An alias moves by compare-and-swap; a version is deleted by swapping its manifest for a tombstone.
Each side looks at the other *after* its own write: ``set_alias`` checks the version is still live
once the alias is stored (and puts the alias back if not), ``delete`` checks no alias points at
the version once the tombstone is stored (and restores the manifest, or with ``force`` removes the
alias). Whatever the interleaving, at least one of them sees the other. A write whose answer was
lost is read back, so a retry never moves an alias twice or fails a delete that landed.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable

from . import convert, eventlog, layout
from .catalog import Catalog, now
from .errors import (
    AliasNotFound,
    AlreadyExists,
    ConflictError,
    InvalidName,
    InvalidRecord,
    KeyNotFound,
    ModelshelfError,
    PreconditionFailed,
    StorageError,
    VersionNotFound,
)
from .lineage import current_user
from .records import Alias, ModelVersion, Tombstone
from .refs import check_alias, check_name, check_version, parse_ref

_MAX_ATTEMPTS = 1000


def _swap(
    catalog: Catalog, name: str, alias: str, version: int | None
) -> tuple[Alias, Alias | None]:
    """Point the alias at ``version`` (``None``: unset) by compare-and-swap; (new, previous)."""
    storage = catalog.storage
    key = layout.alias_key(name, alias)
    for attempt in range(_MAX_ATTEMPTS):
        try:
            stored = storage.read(key)
            current: Alias | None = catalog.parse_alias(name, alias, stored.data)
            etag: str | None = stored.etag
        except KeyNotFound:
            current, etag = None, None
        if version is None and (current is None or current.version is None):
            raise catalog.alias_not_found(name, alias)
        record = Alias(
            name=name,
            alias=alias,
            version=version,
            set_at=now(),
            set_by=current_user(),
            previous=current.version if current else None,
        )
        data = convert.to_json(record)
        try:
            if etag is None:
                storage.put_if_absent(key, data)
            else:
                storage.put_if_match(key, data, etag)
            return record, current
        except (AlreadyExists, PreconditionFailed):
            if catalog.holds(key, data):  # a retry after a lost answer met our own write
                return record, current
            if etag is None and attempt >= 3 and storage.stat(key) is None:
                # Create-only says the key exists, yet it cannot be read or stat'ed: something
                # that is not an object (a directory, say) sits at the alias's place.
                raise InvalidRecord(
                    f"{catalog.url}/{key} exists but is not a readable alias record; the shelf is "
                    "damaged there: remove that entry by hand"
                ) from None
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        except StorageError:
            if catalog.holds(key, data):
                return record, current
            raise
    raise ConflictError(f"could not update alias {name}@{alias}: too many concurrent writers")


def _undo(catalog: Catalog, name: str, alias: str, ours: Alias, before: Alias | None) -> None:
    """Put an alias back as it was, unless someone has moved it since ``ours`` was written."""
    key = layout.alias_key(name, alias)
    try:
        stored = catalog.storage.read(key)
    except KeyNotFound:
        return
    if catalog.parse_alias(name, alias, stored.data) != ours:
        return  # moved again by someone else: theirs is the newer decision
    restored = Alias(
        name=name,
        alias=alias,
        version=before.version if before else None,
        set_at=now(),
        set_by=current_user(),
        previous=ours.version,
    )
    with contextlib.suppress(PreconditionFailed):
        catalog.storage.put_if_match(key, convert.to_json(restored), stored.etag)


def set_alias(
    catalog: Catalog,
    name: str,
    alias: str,
    version: int,
    *,
    check: Callable[[ModelVersion], None] | None = None,
) -> tuple[Alias, Alias | None]:
    """Point ``name@alias`` at a live ``version``; return the new record and the one it replaced.

    ``check`` sees the target first and refuses it by raising (the shelf's protected-alias policy).
    """
    check_name(name)
    check_alias(alias)
    check_version(version)
    catalog.check_format(create=True)
    target = catalog.live_version(name, version)
    if check is not None:
        check(target)
    record, current = _swap(catalog, name, alias, version)
    try:
        catalog.live_version(name, version)  # deleted meanwhile? (see the module docstring)
    except VersionNotFound:
        _undo(catalog, name, alias, record, current)
        left = f"at version {current.version}" if current and current.version else "unset"
        raise VersionNotFound(
            f"{name}:{version} was deleted while {name}@{alias} was being set; the alias was left {left}"
        ) from None
    eventlog.append(
        catalog, name, "alias_set", version=version, alias=alias, previous=record.previous
    )
    return record, current


def remove_alias(catalog: Catalog, name: str, alias: str) -> tuple[Alias, Alias | None]:
    check_name(name)
    check_alias(alias)
    catalog.check_format(create=True)
    record, current = _swap(catalog, name, alias, None)
    eventlog.append(catalog, name, "alias_removed", alias=alias, previous=record.previous)
    return record, current


def delete(
    catalog: Catalog, ref: str, *, force: bool = False, keep_blobs: bool = False
) -> tuple[Tombstone, list[tuple[str, Alias, Alias | None]]]:
    """Tombstone a version; return the tombstone and the aliases removed with it (``force``).

    ``keep_blobs`` lists the version's blobs in the tombstone, so that ``gc`` frees them only a
    grace period after the deletion (retention does this: the versions it removes may be old).
    """
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise InvalidName(f"name the version to delete explicitly, like {parsed.name}:3")
    name, number = parsed.name, parsed.version
    storage = catalog.storage
    catalog.check_format(create=True)
    key = layout.version_key(name, number)
    try:
        stored = storage.read(key)
    except KeyNotFound:
        if not catalog.version_numbers(name):
            raise catalog.model_not_found(name) from None
        raise VersionNotFound(f"{name} has no version {number}") from None
    live = catalog.live_version(name, number, etag=stored.etag)
    pointing = sorted(a for a, rec in catalog.aliases(name).items() if rec.version == number)
    if pointing and not force:
        raise ModelshelfError(
            f"{name}:{number} is the target of alias {', '.join(pointing)}: move the alias first, "
            "or delete with force (CLI: --force) to remove the alias too"
        )
    kept = tuple(b.sha256 for b in live.blobs()) if keep_blobs else ()
    tombstone = Tombstone(
        name=name, version=number, deleted_at=now(), deleted_by=current_user(), blobs=kept
    )
    tombstone_data = convert.to_json(tombstone)
    try:
        tombstone_etag = storage.put_if_match(key, tombstone_data, stored.etag)
    except StorageError as exc:
        # A retry after a lost answer meets our own tombstone: the delete did land.
        landed = storage.stat(key) if catalog.holds(key, tombstone_data) else None
        if landed is None:
            if isinstance(exc, PreconditionFailed):
                raise ConflictError(
                    f"{name}:{number} changed while deleting it; try again"
                ) from None
            raise
        tombstone_etag = landed.etag
    pointing = sorted(a for a, rec in catalog.aliases(name).items() if rec.version == number)
    if pointing and not force:
        try:
            storage.put_if_match(key, stored.data, tombstone_etag)
        except PreconditionFailed:
            pass  # changed again (another delete): the version stays deleted, aliases checked there
        else:
            raise ConflictError(
                f"alias {', '.join(pointing)} was pointed at {name}:{number} while it was being "
                "deleted; nothing was deleted: move the alias first, or delete with force"
            )
    removed: list[tuple[str, Alias, Alias | None]] = []
    for alias in pointing:
        with contextlib.suppress(AliasNotFound):
            removed.append((alias, *remove_alias(catalog, name, alias)))
    # The flag lets listings skip the version without reading its manifest. Should this write be
    # lost, readers still find the tombstone, only one request later.
    with contextlib.suppress(StorageError):
        storage.put_if_absent(layout.deleted_flag_key(name, number), tombstone_data)
    eventlog.append(catalog, name, "delete", version=number)
    return tombstone, removed
