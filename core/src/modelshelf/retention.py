"""Retention: which versions ``gc`` deletes because a rule no longer keeps them.

A rule keeps the ``keep_last`` newest live versions of each model it covers, the versions created
less than ``keep_newer_than_days`` ago, and always every version an alias points to or left less
than ``recently_aliased_days`` ago (``keep_aliased``: every version ever aliased). With several
rules (the shelf's policy and the one given to ``gc``), a version goes only if every rule that
covers its model lets it go: a rule given on the command line can never remove what the policy
keeps.

Removal is a ``delete``: a tombstone and a history event, and the alias/delete invariant of
:mod:`modelshelf.lifecycle` (an alias moved onto a version while it is removed keeps it). The
tombstone lists the version's blobs, so ``gc`` frees them only a grace period later; uploads that
re-use one of them are protected by the lease protocol (:mod:`modelshelf.leases`) as always.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence

import attrs

from . import eventlog, lifecycle
from .catalog import Catalog
from .errors import ConflictError, ModelshelfError, NotFound
from .records import ModelVersion, RetentionRule


@attrs.frozen
class RetentionPlan:
    """The versions retention removes (or, in a dry run, would remove)."""

    #: ``name:N`` of each version removed.
    removed: tuple[str, ...] = ()
    #: Bytes of blobs that no version left on the shelf references, once the grace period passes.
    removed_bytes: int = 0
    #: Versions that were to go but stayed (an alias moved onto them meanwhile...), with why.
    spared: tuple[str, ...] = ()


def covers(rule: RetentionRule, name: str) -> bool:
    return not rule.models or any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.models)


def _aliased(catalog: Catalog, name: str, since: dt.datetime) -> tuple[set[int], set[int]]:
    """Versions aliased now or since ``since`` (by alias records and history), and ever aliased."""
    recent: set[int] = set()
    ever: set[int] = set()
    aliases, _ = catalog.scan_aliases(name)
    for record in aliases.values():
        if record.version is not None:
            recent.add(record.version)
        if record.previous is not None and record.set_at >= since:
            recent.add(record.previous)
    events, _ = eventlog.scan(catalog, name)
    for event in events:
        if event.action not in ("alias_set", "alias_removed"):
            continue
        touched = {n for n in (event.version, event.previous) if n is not None}
        ever |= touched
        if event.at >= since:
            recent |= touched
    return recent, ever | recent


def _kept_by(
    rule: RetentionRule,
    versions: Sequence[ModelVersion],
    recent: set[int],
    ever: set[int],
    now: dt.datetime,
) -> set[int]:
    numbers = sorted(v.version for v in versions)
    kept = set(recent)
    if rule.keep_aliased:
        kept |= ever
    if rule.keep_last is not None:
        kept |= set(numbers[-rule.keep_last :])
    if rule.keep_newer_than_days is not None:
        cutoff = now - dt.timedelta(days=rule.keep_newer_than_days)
        kept |= {v.version for v in versions if v.created_at >= cutoff}
    return kept


def plan(catalog: Catalog, rules: Sequence[RetentionRule], now: dt.datetime) -> list[ModelVersion]:
    """The live versions that every covering rule lets go, oldest first within each model."""
    if not rules:
        return []
    doomed: list[ModelVersion] = []
    for name in catalog.models():
        covering = [r for r in rules if covers(r, name)]
        if not covering:
            continue
        try:
            versions = catalog.versions(name)
        except NotFound:
            continue
        recent_days = max(r.recently_aliased_days for r in covering)
        recent, ever = _aliased(catalog, name, now - dt.timedelta(days=recent_days))
        kept = set.union(*(_kept_by(r, versions, recent, ever, now) for r in covering))
        doomed.extend(v for v in versions if v.version not in kept)
    return doomed


def freed_bytes(catalog: Catalog, doomed: Sequence[ModelVersion]) -> int:
    """Bytes of the blobs of ``doomed`` that no other live version on the shelf references."""
    if not doomed:
        return 0
    leaving = {(v.name, v.version) for v in doomed}
    staying: set[str] = set()
    for name in catalog.models():
        try:
            staying |= {
                b.sha256
                for v in catalog.versions(name)
                if (v.name, v.version) not in leaving
                for b in v.blobs()
            }
        except NotFound:
            continue
    sizes = {b.sha256: b.size for v in doomed for b in v.blobs()}
    return sum(size for sha, size in sizes.items() if sha not in staying)


def apply(
    catalog: Catalog, rules: Sequence[RetentionRule], now: dt.datetime, *, dry_run: bool
) -> RetentionPlan:
    doomed = plan(catalog, rules, now)
    freed = freed_bytes(catalog, doomed)
    if dry_run:
        return RetentionPlan(tuple(v.ref for v in doomed), freed)
    removed: list[str] = []
    spared: list[str] = []
    for version in doomed:
        try:
            lifecycle.delete(catalog, version.ref, keep_blobs=True)
        except NotFound:
            continue  # deleted by someone else meanwhile
        except (ConflictError, ModelshelfError) as exc:
            spared.append(f"{version.ref}: {exc}")  # an alias was set on it meanwhile, say
            continue
        removed.append(version.ref)
    if spared:
        freed = freed_bytes(catalog, [v for v in doomed if v.ref in set(removed)])
    return RetentionPlan(tuple(removed), freed, tuple(spared))
