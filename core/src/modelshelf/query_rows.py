"""What a ``where`` expression reads and how it compares: rows, fields and stored values.

A *row* is a plain dict per version (see :func:`row_of`); a :class:`Field` reads one value from
it, or :data:`MISSING` when the version lacks it. Comparisons never fail on data: a missing field
makes every comparison with it false; a number compared with a string that reads as a number
compares as numbers (tags are strings); other mixed types are simply unequal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .cards import CARD_PATH

#: What a field reads when the version lacks it.
MISSING: Any = object()

#: Fields every version has, and the row key each one reads.
FIELDS: dict[str, str] = {
    "name": "name",
    "version": "version",
    "created_at": "created_at",
    "created_by": "created_by",
    "creator": "created_by",
    "description": "description",
    "framework": "framework",
    "framework.name": "framework",
    "framework.version": "framework_version",
    "serializer": "serializer",
    "serializer.name": "serializer",
    "serializer.format": "serializer_format",
    "serializer.safe": "serializer_safe",
    "size": "total_size",
    "total_size": "total_size",
    "card": "card",
    "aliases": "aliases",
}
#: Fields that hold a mapping; ``metrics.KEY`` and ``tags.KEY`` take one key, ``params`` and
#: ``metadata`` a path into nested objects (``metadata.owner.team``).
MAPPINGS = {"metrics": 1, "tags": 1, "params": None, "metadata": None}


# --- rows and fields -----------------------------------------------------------------------------

Getter = Callable[[Mapping[str, Any]], Any]


@attrs.frozen
class Field:
    """A field of a version as written in an expression (``metrics.auc``), and how to read it."""

    text: str
    get: Getter = attrs.field(eq=False, repr=False)
    #: Set for ``created_at``: literals compared with it must be ISO dates or times.
    is_time: bool = False


def key_path(root: str, keys: Sequence[str]) -> Getter:
    """Read ``row[root][keys[0]][keys[1]]...``; :data:`MISSING` where a step is absent."""

    def get(row: Mapping[str, Any]) -> Any:
        value: Any = row.get(root, MISSING)
        for key in keys:
            if not isinstance(value, dict):
                return MISSING
            value = value.get(key, MISSING)
        return value

    return get


def simple(key: str) -> Getter:
    """Read ``row[key]``; :data:`MISSING` when absent."""
    return lambda row: row.get(key, MISSING)


def row_of(version: Any, aliases: Iterable[str] = ()) -> dict[str, Any]:
    """The row an expression reads for a :class:`~modelshelf.records.ModelVersion`: plain JSON
    values only (``created_at`` as a POSIX timestamp), so rows can be cached as JSON."""
    framework = version.framework
    serializer = version.serializer
    return {
        "name": version.name,
        "version": version.version,
        "created_at": version.created_at.timestamp(),
        "created_by": version.created_by,
        "description": version.description,
        "framework": framework.name if framework else MISSING,
        "framework_version": framework.version if framework else MISSING,
        "serializer": serializer.name,
        "serializer_format": serializer.format,
        "serializer_safe": serializer.safe,
        "total_size": version.total_size,
        "card": any(f.path == CARD_PATH for f in version.files),
        "metrics": dict(version.metrics),
        "params": dict(version.params),
        "tags": dict(version.tags),
        "metadata": dict(version.metadata),
        "aliases": sorted(aliases),
    }


def row_to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON can hold it (missing fields left out)."""
    return {k: v for k, v in row.items() if v is not MISSING}


# --- comparing values --------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _align(left: Any, right: Any) -> tuple[Any, Any] | None:
    """The two sides in one comparable type, or ``None`` when they cannot be ordered."""
    if isinstance(left, bool) or isinstance(right, bool):
        return (left, right) if isinstance(left, bool) and isinstance(right, bool) else None
    if is_number(left) and is_number(right):
        return left, right
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    if isinstance(left, str) and is_number(right):
        number = _as_number(left)
        return None if number is None else (number, right)
    if is_number(left) and isinstance(right, str):
        number = _as_number(right)
        return None if number is None else (left, number)
    return None


def equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    aligned = _align(left, right)
    return aligned is not None and aligned[0] == aligned[1]


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare(left: Any, op: str, right: Any) -> bool:
    """``left op right`` on stored data; a missing field (:data:`MISSING`) is never true."""
    if left is MISSING:
        return False
    if op in ("==", "="):
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    aligned = _align(left, right)
    if aligned is None or isinstance(aligned[0], bool):
        return False
    return _ORDER[op](*aligned)


def contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return any(equal(element, item) for element in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    return False


# --- created_at: dates and times ------------------------------------------------------------------


@attrs.frozen
class TimeSpan:
    """A literal compared with ``created_at``: one instant, or a whole (UTC) day."""

    start: float
    end: float  # equal to start for an instant


def time_test(get: Getter, op: str, value: TimeSpan) -> Callable[[Mapping[str, Any]], bool]:
    """``created_at op value``: a whole day is one value, so ``<= day`` includes that day."""
    start, end = value.start, value.end
    day = end > start

    def test(row: Mapping[str, Any]) -> bool:
        at = get(row)
        if not is_number(at):
            return False
        if op in ("==", "="):
            return bool(start <= at < end if day else at == start)
        if op == "!=":
            return not (start <= at < end if day else at == start)
        if op == "<":
            return bool(at < start)
        if op == "<=":
            return bool(at < end if day else at <= start)
        if op == ">":
            return bool(at >= end if day else at > start)
        return bool(at >= start)  # ">="

    return test
