"""Reading a ``where`` expression: a tokenizer and a recursive-descent parser into closures.

The grammar is in :mod:`modelshelf.query`. Nothing is ever ``eval``-ed, no attribute is looked up
by name, and nothing can be called: fields are a fixed list (:data:`~modelshelf.query_rows.FIELDS`)
plus keys of ``metrics``, ``params``, ``tags`` and ``metadata``; dunder names, calls and anything
else are refused with a :class:`QueryError` naming the column of the mistake. Input is limited to
:data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import ModelshelfError
from .query_rows import (
    FIELDS,
    MAPPINGS,
    MISSING,
    Field,
    TimeSpan,
    compare,
    contains,
    equal,
    key_path,
    simple,
    time_test,
)

#: Longest expression accepted, in characters.
MAX_LENGTH = 4096
#: Deepest nesting of parentheses and ``not`` accepted.
MAX_DEPTH = 32

_KEYWORDS = {"and", "or", "not", "in", "contains", "exists", "true", "false", "null"}

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


def show(text: str) -> str:
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
            raise QueryError(f"unexpected character {show(text[position])}", column)
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
        raise QueryError(f"number {show(word)} is out of range", column)
    return value


# --- the grammar -------------------------------------------------------------------------------


class Parser:
    """Parses one expression (:meth:`parse`) or one field (:meth:`field`) from ``text``."""

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
        return "the end of the expression" if token.kind == "end" else show(token.text)

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
                return time_test(get, op, value)
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
                tests = [time_test(get, "==", v) for v in values]
                if negated:
                    return lambda row: get(row) is not MISSING and not any(t(row) for t in tests)
                return lambda row: any(t(row) for t in tests)
            if negated:
                return lambda row: (
                    (v := get(row)) is not MISSING and not any(equal(v, x) for x in values)
                )
            return lambda row: (v := get(row)) is not MISSING and any(equal(v, x) for x in values)
        if self.keyword("contains"):
            word = self.advance()
            item = self.literal(after=word, field=None)
            return lambda row: contains(get(row), item)
        if self.keyword("exists"):
            self.advance()
            return lambda row: get(row) is not MISSING
        raise self.fail(
            f"expected a comparison (== != < <= > >=), 'in', 'contains' or 'exists' after "
            f"{show(field.text)} but found {self.describe(token)}"
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
                raise self.fail(f"{root}.KEY takes one key; {show(text)} has {len(keys)}", start)
            return Field(text, key_path(root, keys))
        dotted = ".".join([root, *keys])
        if dotted in FIELDS:
            return Field(text, simple(FIELDS[dotted]), is_time=dotted == "created_at")
        if root in ("framework", "serializer") or root in FIELDS:
            raise self.fail(f"{show(dotted)} is not a field (did you mean {show(root)}?)", start)
        raise self.fail(
            f"unknown field {show(root)} (fields: metrics.KEY, params.KEY, tags.KEY, metadata.KEY, "
            f"{', '.join(sorted(k for k in FIELDS if '.' not in k))})",
            start,
        )

    def refuse_call(self, name: Token) -> None:
        if self.token.kind == "punct" and self.token.text == "(":
            raise self.fail(f"function calls are not allowed ({show(name.text + '(')})")

    def literal(self, *, after: Token, field: Field | None) -> Any:
        token = self.token
        if token.kind in ("string", "number"):
            self.advance()
            value = token.value
        elif token.kind == "name" and token.text.lower() in ("true", "false", "null"):
            self.advance()
            value = {"true": True, "false": False, "null": None}[token.text.lower()]
        else:
            raise self.fail(f"expected a value after {show(after.text)}")
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
            f"names starting with '__' are not allowed ({show(token.text)})", token.column
        )


# --- created_at: dates and times ------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_time(value: Any, token: Token) -> TimeSpan:
    """A literal compared with ``created_at``: a bare date is that whole UTC day."""
    if not isinstance(value, str):
        raise QueryError(
            "created_at compares with an ISO date or time such as '2026-11-01'", token.column
        )
    try:
        if _DATE.fullmatch(value):
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
            return TimeSpan(day.timestamp(), (day + dt.timedelta(days=1)).timestamp())
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{show(value)} is not an ISO date or time (such as '2026-11-01' or '2026-11-01T12:00Z')",
            token.column,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    instant = moment.timestamp()
    return TimeSpan(instant, instant)
