"""The shelf's policy: what a version needs before a protected alias may point to it, and which
versions ``gc`` keeps.

The policy lives at ``policy/<n>.json``; every change writes the next number create-only, so
earlier policies stay readable (its history) and two writers cannot overwrite each other. Core
checks metrics and tags itself; every other requirement (``signed_by``, or whatever a plugin
adds) goes to the plugins through the ``modelshelf_check_version`` hook, and a requirement that no
installed plugin answers is *not met*: a check is never skipped silently.

What this protects against is stated in ``docs/trust.md``: a writer who uses a modelshelf client
is refused; a writer who edits the bucket directly is caught by every reader that enforces the
policy; only bucket permissions stop someone from rewriting the policy itself.
"""

from __future__ import annotations

import fnmatch
import random
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import convert, layout
from .catalog import Catalog, now
from .errors import (
    AlreadyExists,
    ConflictError,
    InvalidRecord,
    ModelshelfError,
    PolicyViolation,
    StorageError,
)
from .lineage import current_user
from .records import AliasRule, ModelVersion, Policy, RetentionRule

if TYPE_CHECKING:
    from .shelf import Shelf


def policy_numbers(catalog: Catalog) -> list[int]:
    numbers = []
    for info in catalog.storage.list(layout.POLICY_PREFIX):
        stem = info.key[len(layout.POLICY_PREFIX) :]
        if len(stem) == 15 and stem.endswith(".json") and stem[:10].isdigit():
            numbers.append(int(stem[:10]))
    return sorted(numbers)


def read_policy(catalog: Catalog, number: int) -> Policy:
    key = layout.policy_key(number)
    record = catalog.read_record(
        key, lambda data: convert.from_json(data, Policy, source=f"{catalog.url}/{key}")
    )
    if record.number != number:
        raise InvalidRecord(
            f"{catalog.url}/{key} claims to be policy {record.number}; the shelf is damaged"
        )
    return record


def current_policy(catalog: Catalog) -> Policy | None:
    """The newest policy, or ``None`` when the shelf has none.

    A newest policy that cannot be read is an error, never "no policy": falling back to an older
    one (or to none) would let anyone who can write a broken record switch protection off.
    """
    numbers = policy_numbers(catalog)
    if not numbers:
        return None
    return read_policy(catalog, numbers[-1])


def policy_history(catalog: Catalog) -> list[Policy]:
    return [read_policy(catalog, n) for n in policy_numbers(catalog)]


def set_policy(
    catalog: Catalog, *, aliases: Iterable[AliasRule] = (), retention: RetentionRule | None = None
) -> Policy:
    """Store a new policy as the next number (create-only; retried when another writer wins)."""
    catalog.check_format(create=True)
    rules = tuple(aliases)
    for rule in rules:
        check_pattern(rule.pattern)
    if retention is not None:
        check_retention(retention)
    for attempt in range(100):
        number = max(policy_numbers(catalog), default=0) + 1
        record = Policy(
            number=number,
            created_at=now(),
            created_by=current_user(),
            aliases=rules,
            retention=retention,
        )
        data = convert.to_json(record)
        key = layout.policy_key(number)
        try:
            catalog.storage.put_if_absent(key, data)
            return record
        except AlreadyExists:
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        except StorageError:
            if catalog.holds(key, data):
                return record
            raise
    raise ConflictError("could not store the policy: too many concurrent writers")


def check_pattern(pattern: str) -> str:
    if (
        not isinstance(pattern, str)
        or not pattern
        or pattern.count("@") > 1
        or pattern.endswith("@")
    ):
        raise ModelshelfError(
            f"invalid alias pattern {pattern!r}: give ALIAS or MODEL@ALIAS (wildcards * and ?)"
        )
    return pattern


def check_retention(rule: RetentionRule) -> RetentionRule:
    if rule.keep_last is not None and rule.keep_last < 1:
        raise ModelshelfError("keep_last must be at least 1 (a policy never removes every version)")
    if rule.keep_newer_than_days is not None and rule.keep_newer_than_days < 0:
        raise ModelshelfError("keep_newer_than_days cannot be negative")
    if rule.keep_last is None and rule.keep_newer_than_days is None:
        raise ModelshelfError(
            "a retention rule needs keep_last or keep_newer_than (else it would keep only aliased versions)"
        )
    return rule


def rules_for(policy: Policy | None, name: str, alias: str) -> list[AliasRule]:
    """The rules of ``policy`` that protect ``name@alias``."""
    if policy is None:
        return []
    found = []
    for rule in policy.aliases:
        model_pattern, _, alias_pattern = rule.pattern.rpartition("@")
        if fnmatch.fnmatchcase(alias, alias_pattern) and (
            not model_pattern or fnmatch.fnmatchcase(name, model_pattern)
        ):
            found.append(rule)
    return found


# --- checking a version ---------------------------------------------------------------------


def plugin_checks(
    shelf: Shelf, version: ModelVersion, requirements: Mapping[str, Any]
) -> list[str]:
    """Ask the plugins to check ``requirements``; one line per requirement not met.

    Each plugin implementing ``modelshelf_check_version`` returns ``{requirement: reason or
    None}`` for the requirements it understands. A requirement is met when one plugin answers
    ``None`` (several signature plugins may each know their own formats); one that nobody
    answered is not met, and a plugin that raises counts as a failed answer (never as met).
    """
    from .plugins import get_registry

    registry = get_registry()
    registry.load()
    answered: dict[str, list[str | None]] = {}
    for plugin, function in list(registry._impls("modelshelf_check_version")):
        try:
            result = function(shelf=shelf, version=version, requirements=dict(requirements))
        except Exception as exc:  # a failed check, never swallowed
            for key in requirements:
                answered.setdefault(key, []).append(f"plugin {plugin!r} failed checking it: {exc}")
            continue
        for key, reason in (result or {}).items():
            if key in requirements:
                answered.setdefault(key, []).append(reason)
    failures = []
    for key in requirements:
        reasons = answered.get(key)
        if not reasons:
            hint = " (install modelshelf-sign)" if key == "signed_by" else ""
            failures.append(f"no installed plugin checks {key!r}{hint}")
        elif all(reasons):  # met as soon as one plugin vouches for it (each knows its own formats)
            failures.extend(dict.fromkeys(r for r in reasons if r))
    return failures


def rule_failures(shelf: Shelf, version: ModelVersion, rule: AliasRule) -> list[str]:
    failures = []
    for metric, lowest in sorted(rule.min_metrics.items()):
        value = version.metrics.get(metric)
        if value is None:
            failures.append(f"metric {metric} is missing (needs >= {lowest:g})")
        elif value < lowest:
            failures.append(f"metric {metric} is {value:g} (needs >= {lowest:g})")
    for tag, wanted in sorted(rule.tags.items()):
        if version.tags.get(tag) != wanted:
            failures.append(f"tag {tag}={wanted} is missing")
    if rule.signed_by:
        failures.extend(plugin_checks(shelf, version, {"signed_by": list(rule.signed_by)}))
    return failures


def check_alias_target(
    shelf: Shelf, policy: Policy | None, version: ModelVersion, alias: str
) -> None:
    """Raise :class:`PolicyViolation` (one line) if ``version`` may not be ``alias``'s target."""
    for rule in rules_for(policy, version.name, alias):
        failures = rule_failures(shelf, version, rule)
        if failures:
            assert policy is not None
            raise PolicyViolation(
                f"{version.ref} may not be {version.name}@{alias}: {'; '.join(failures)} "
                f"(policy {policy.number}, rule {rule.pattern!r})"
            )


def check_signature(shelf: Shelf, version: ModelVersion, signers: bool | Iterable[str]) -> None:
    """``require_signature``: ``True`` (any valid signature) or the signers allowed."""
    wanted: Any = True if signers is True else list(signers)  # type: ignore[arg-type]
    failures = plugin_checks(shelf, version, {"signed_by": wanted})
    if failures:
        raise PolicyViolation(f"{version.ref}: {'; '.join(failures)}")


__all__ = [
    "PolicyViolation",
    "check_alias_target",
    "check_signature",
    "current_policy",
    "plugin_checks",
    "policy_history",
    "rules_for",
    "set_policy",
]
