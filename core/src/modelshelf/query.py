"""The expression language of ``shelf.find(where=...)`` and ``modelshelf ls NAME --where``.

::

    metrics.auc >= 0.9 and tags.data == '2026-11'
    (framework == 'sklearn' or params.C in [0.1, 1]) and not aliases contains 'prod'
    created_at >= '2026-11-01' and created_by != 'ci@runner' and metadata.owner exists

Grammar (keywords are case-insensitive)::

    expression := conjunction ("or" conjunction)*
    conjunction := negation ("and" negation)*
    negation   := "not" negation | "(" expression ")" | test
    test       := field ( ("==" | "=" | "!=" | "<" | "<=" | ">" | ">=") value
                        | ["not"] "in" "[" [value ("," value)*] "]"
                        | "contains" value
                        | "exists" )
    field      := NAME ("." (NAME | STRING))*
    value      := STRING | NUMBER | "true" | "false" | "null"

It is parsed here, by a tokenizer and a recursive-descent parser, into closures over a plain
dict per version (a *row*, see :func:`row_of`); nothing is ever ``eval``-ed, no attribute is
looked up by name, and nothing can be called. Fields are a fixed list (:data:`FIELDS`) plus keys
of ``metrics``, ``params``, ``tags`` and ``metadata``; dunder names, calls and anything else are
refused with a :class:`QueryError` naming the column of the mistake. Input is limited to
:data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting.

Comparisons never fail on data: a field a version lacks makes every comparison with it false
(``!=`` included; ``not (tags.x == 'a')`` and ``exists`` say the rest); a number compared with
a string that reads as a number compares as numbers (tags are strings); other mixed types are
simply unequal. ``created_at`` compares with ISO dates or times (UTC unless an offset is given);
a bare date means that whole day, so ``created_at <= '2026-11-01'`` includes November 1st.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .cards import CARD_PATH
from .errors import ModelshelfError

#: Longest expression accepted, in characters.
MAX_LENGTH = 4096
#: Deepest nesting of parentheses and ``not`` accepted.
MAX_DEPTH = 32

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

_MISSING: Any = object()
_KEYWORDS = {"and", "or", "not", "in", "contains", "exists", "true", "false", "null"}
_COMPARISONS = {"==", "=", "!=", "<", "<=", ">", ">="}

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
      | (?P<op>==|!=|<=|>=|<|>|=)
      | (?P<punct>[()\[\],.])
      | (?P<string>['"])""",
    re.VERBOSE,
)


class QueryError(ModelshelfError, ValueError):
    """An expression that is not valid, with the 1-based ``column`` of the mistake."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} at column {column}")
        self.column = column


@attrs.frozen
class Token:
    kind: str  # "number", "name", "op", "punct", "string", "end"
    text: str
    value: Any
    column: int


def _show(text: str) -> str:
    """A token as quoted in an error message: short, control characters escaped."""
    from .terminal import safe

    shown = safe(text[:30]) + ("..." if len(text) > 30 else "")
    return f"'{shown}'"


def tokenize(text: str) -> list[Token]:
    if not isinstance(text, str):
        raise QueryError(f"an expression must be a string, not {type(text).__name__}", 1)
    if len(text) > MAX_LENGTH:
        raise QueryError(
            f"expression is {len(text)} characters long (limit {MAX_LENGTH})", MAX_LENGTH + 1
        )
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        column = position + 1
        if match is None:
            raise QueryError(f"unexpected character {_show(text[position])}", column)
        kind = match.lastgroup
        assert kind is not None
        if kind == "string":
            value, position = _read_string(text, position)
            tokens.append(Token("string", text[column - 1 : position], value, column))
            continue
        position = match.end()
        word = match.group()
        if kind == "number":
            tokens.append(Token("number", word, _number(word, column), column))
        elif kind != "space":
            tokens.append(Token(kind, word, word, column))
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string from ``start`` (its quote): its value and the position after it.
    Only the quote itself and the backslash can be escaped."""
    quote = text[start]
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text) and text[position + 1] in (quote, "\\"):
            out.append(text[position + 1])
            position += 2
        elif char == quote:
            return "".join(out), position + 1
        else:
            out.append(char)
            position += 1
    raise QueryError("unterminated string", start + 1)


def _number(word: str, column: int) -> int | float:
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    value = float(word)
    if not math.isfinite(value):
        raise QueryError(f"number {_show(word)} is out of range", column)
    return value


# --- comparing values --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
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
    if _is_number(left) and _is_number(right):
        return left, right
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    if isinstance(left, str) and _is_number(right):
        number = _as_number(left)
        return None if number is None else (number, right)
    if _is_number(left) and isinstance(right, str):
        number = _as_number(right)
        return None if number is None else (left, number)
    return None


def _equal(left: Any, right: Any) -> bool:
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
    """``left op right`` on stored data; a missing field (``_MISSING``) is never true."""
    if left is _MISSING:
        return False
    if op in ("==", "="):
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    aligned = _align(left, right)
    if aligned is None or isinstance(aligned[0], bool):
        return False
    return _ORDER[op](*aligned)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return any(_equal(element, item) for element in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    return False


# --- fields --------------------------------------------------------------------------------------

Getter = Callable[[Mapping[str, Any]], Any]
RowT = TypeVar("RowT", bound=Mapping[str, Any])


@attrs.frozen
class Field:
    """A field of a version as written in an expression (``metrics.auc``), and how to read it."""

    text: str
    get: Getter = attrs.field(eq=False, repr=False)
    #: Set for ``created_at``: literals compared with it must be ISO dates or times.
    is_time: bool = False


def _key_path(root: str, keys: Sequence[str]) -> Getter:
    def get(row: Mapping[str, Any]) -> Any:
        value: Any = row.get(root, _MISSING)
        for key in keys:
            if not isinstance(value, dict):
                return _MISSING
            value = value.get(key, _MISSING)
        return value

    return get


def _simple(key: str) -> Getter:
    return lambda row: row.get(key, _MISSING)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0
        self.depth = 0
        self.roots: set[str] = set()

    # -- tokens --

    @property
    def token(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.token
        return token.kind == "name" and token.text.lower() == word

    def describe(self, token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else _show(token.text)

    def fail(self, message: str, token: Token | None = None) -> QueryError:
        token = token or self.token
        return QueryError(message, token.column)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels")

    # -- grammar --

    def parse(self) -> Callable[[Mapping[str, Any]], bool]:
        if self.token.kind == "end":
            raise self.fail("empty expression")
        test = self.disjunction()
        if self.token.kind != "end":
            raise self.fail(
                f"unexpected {self.describe(self.token)} (expected 'and', 'or' or the end)"
            )
        return test

    def disjunction(self) -> Callable[[Mapping[str, Any]], bool]:
        parts = [self.conjunction()]
        while self.keyword("or"):
            self.advance()
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(part(row) for part in parts)

    def conjunction(self) -> Callable[[Mapping[str, Any]], bool]:
        parts = [self.negation()]
        while self.keyword("and"):
            self.advance()
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(part(row) for part in parts)

    def negation(self) -> Callable[[Mapping[str, Any]], bool]:
        self.enter()
        try:
            if self.keyword("not"):
                self.advance()
                inner = self.negation()
                return lambda row: not inner(row)
            if self.token.text == "(" and self.token.kind == "punct":
                self.advance()
                inner = self.disjunction()
                if self.token.text != ")":
                    raise self.fail(f"expected ')' but found {self.describe(self.token)}")
                self.advance()
                return inner
            return self.test()
        finally:
            self.depth -= 1

    def test(self) -> Callable[[Mapping[str, Any]], bool]:
        field = self.field()
        token = self.token
        get = field.get
        if token.kind == "op":
            self.advance()
            value = self.literal(after=token, field=field)
            op = token.text
            if field.is_time:
                return _time_test(get, op, value)
            return lambda row: compare(get(row), op, value)
        if self.keyword("not") or self.keyword("in"):
            negated = self.keyword("not")
            if negated:
                self.advance()
                if not self.keyword("in"):
                    raise self.fail(
                        f"expected 'in' after 'not' but found {self.describe(self.token)}"
                    )
            values = self.value_list(field)
            if field.is_time:
                tests = [_time_test(get, "==", v) for v in values]
                if negated:
                    return lambda row: get(row) is not _MISSING and not any(t(row) for t in tests)
                return lambda row: any(t(row) for t in tests)
            if negated:
                return lambda row: (
                    (v := get(row)) is not _MISSING and not any(_equal(v, x) for x in values)
                )
            return lambda row: (v := get(row)) is not _MISSING and any(_equal(v, x) for x in values)
        if self.keyword("contains"):
            contains = self.advance()
            item = self.literal(after=contains, field=None)
            return lambda row: _contains(get(row), item)
        if self.keyword("exists"):
            self.advance()
            return lambda row: get(row) is not _MISSING
        raise self.fail(
            f"expected a comparison (== != < <= > >=), 'in', 'contains' or 'exists' after "
            f"{_show(field.text)} but found {self.describe(token)}"
        )

    def field(self) -> Field:
        start = self.token
        if start.kind != "name" or start.text.lower() in _KEYWORDS:
            raise self.fail(
                f"expected a field (such as metrics.auc or tags.data) but found {self.describe(start)}"
            )
        self.advance()
        _refuse_dunder(start)
        self.refuse_call(start)
        root = start.text
        keys: list[str] = []
        while self.token.kind == "punct" and self.token.text == ".":
            dot = self.advance()
            key = self.token
            if key.kind == "name":
                _refuse_dunder(key)
            elif key.kind != "string":
                raise self.fail(
                    f"expected a key after '.' but found {self.describe(key)}",
                    key if key.kind != "end" else dot,
                )
            self.advance()
            self.refuse_call(key)
            keys.append(key.value)
        self.roots.add(root)
        text = ".".join([root, *keys])
        if root in MAPPINGS:
            limit = MAPPINGS[root]
            if limit is not None and len(keys) > limit:
                raise self.fail(f"{root}.KEY takes one key; {_show(text)} has {len(keys)}", start)
            return Field(text, _key_path(root, keys))
        dotted = ".".join([root, *keys])
        if dotted in FIELDS:
            return Field(text, _simple(FIELDS[dotted]), is_time=dotted == "created_at")
        if root in ("framework", "serializer") or root in FIELDS:
            raise self.fail(f"{_show(dotted)} is not a field (did you mean {_show(root)}?)", start)
        raise self.fail(
            f"unknown field {_show(root)} (fields: metrics.KEY, params.KEY, tags.KEY, metadata.KEY, "
            f"{', '.join(sorted(k for k in FIELDS if '.' not in k))})",
            start,
        )

    def refuse_call(self, name: Token) -> None:
        if self.token.kind == "punct" and self.token.text == "(":
            raise self.fail(f"function calls are not allowed ({_show(name.text + '(')})")

    def literal(self, *, after: Token, field: Field | None) -> Any:
        token = self.token
        if token.kind in ("string", "number"):
            self.advance()
            value = token.value
        elif token.kind == "name" and token.text.lower() in ("true", "false", "null"):
            self.advance()
            value = {"true": True, "false": False, "null": None}[token.text.lower()]
        else:
            raise self.fail(f"expected a value after {_show(after.text)}")
        if field is not None and field.is_time:
            return _parse_time(value, token)
        return value

    def value_list(self, field: Field) -> list[Any]:
        keyword = self.advance()  # "in"
        if not (self.token.kind == "punct" and self.token.text == "["):
            raise self.fail(f"expected '[' after 'in' but found {self.describe(self.token)}")
        self.advance()
        values: list[Any] = []
        previous = keyword
        while not (self.token.kind == "punct" and self.token.text == "]"):
            if values:
                if self.token.text != ",":
                    raise self.fail(f"expected ',' or ']' but found {self.describe(self.token)}")
                previous = self.advance()
            values.append(self.literal(after=previous, field=field))
        self.advance()
        return values


def _refuse_dunder(token: Token) -> None:
    if token.text.startswith("__"):
        raise QueryError(
            f"names starting with '__' are not allowed ({_show(token.text)})", token.column
        )


# --- created_at: dates and times ------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@attrs.frozen
class _Time:
    """A literal compared with ``created_at``: one instant, or a whole (UTC) day."""

    start: float
    end: float  # equal to start for an instant


def _parse_time(value: Any, token: Token) -> _Time:
    if not isinstance(value, str):
        raise QueryError(
            "created_at compares with an ISO date or time such as '2026-11-01'", token.column
        )
    try:
        if _DATE.fullmatch(value):
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
            return _Time(day.timestamp(), (day + dt.timedelta(days=1)).timestamp())
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{_show(value)} is not an ISO date or time (such as '2026-11-01' or '2026-11-01T12:00Z')",
            token.column,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    instant = moment.timestamp()
    return _Time(instant, instant)


def _time_test(get: Getter, op: str, value: _Time) -> Callable[[Mapping[str, Any]], bool]:
    start, end = value.start, value.end
    day = end > start

    def test(row: Mapping[str, Any]) -> bool:
        at = get(row)
        if not _is_number(at):
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


# --- the public surface --------------------------------------------------------------------------


@attrs.frozen
class Query:
    """A parsed ``where`` expression: call :meth:`matches` on rows (see :func:`row_of`)."""

    text: str
    test: Callable[[Mapping[str, Any]], bool] = attrs.field(eq=False, repr=False)
    #: The first segment of every field the expression reads (``metrics``, ``aliases``...).
    roots: frozenset[str] = frozenset()

    def matches(self, row: Mapping[str, Any]) -> bool:
        return self.test(row)


def parse(text: str) -> Query:
    """Parse an expression; :class:`QueryError` (one line, with a column) if it is not valid."""
    parser = _Parser(text)
    test = parser.parse()
    return Query(text, test, frozenset(parser.roots))


@attrs.frozen
class SortKey:
    """One ``order_by`` term: a field, descending when written with a leading ``-``."""

    field: Field
    descending: bool = False


def parse_order(terms: str | Iterable[str] | None) -> list[SortKey]:
    """``"-metrics.auc"``, ``"tags.data,-version"`` or a list of such terms."""
    if terms is None:
        return []
    items = [terms] if isinstance(terms, str) else list(terms)
    keys: list[SortKey] = []
    for item in items:
        if not isinstance(item, str):
            raise QueryError(f"order_by terms must be strings, not {type(item).__name__}", 1)
        for term in item.split(","):
            stripped = term.strip()
            descending = stripped.startswith("-")
            text = stripped.lstrip("+-").strip() if stripped[:1] in "+-" else stripped
            parser = _Parser(text)
            if parser.token.kind == "end":
                raise QueryError("empty sort term", 1)
            field = parser.field()
            if parser.token.kind != "end":
                raise parser.fail(
                    f"unexpected {parser.describe(parser.token)} in sort term {_show(stripped)}"
                )
            keys.append(SortKey(field, descending))
    return keys


def _rank(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return 0, float(value)
    if _is_number(value):
        return 0, value
    if isinstance(value, str):
        return 1, value
    return 2, json.dumps(value, sort_keys=True, default=str)


def sort_rows(rows: Sequence[RowT], keys: Sequence[SortKey]) -> list[RowT]:
    """Rows sorted by ``keys`` (stable; a missing value sorts last in either direction): numbers
    before strings before anything else; rows equal on every key keep version order."""
    ordered = sorted(rows, key=lambda row: row.get("version", 0))
    for key in reversed(keys):
        present = [r for r in ordered if key.field.get(r) is not _MISSING]
        missing = [r for r in ordered if key.field.get(r) is _MISSING]
        get = key.field.get
        present.sort(key=lambda r: _rank(get(r)), reverse=key.descending)
        ordered = present + missing
    return ordered


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
        "framework": framework.name if framework else _MISSING,
        "framework_version": framework.version if framework else _MISSING,
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
    return {k: v for k, v in row.items() if v is not _MISSING}


__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Query",
    "QueryError",
    "SortKey",
    "parse",
    "parse_order",
    "row_of",
    "sort_rows",
]
