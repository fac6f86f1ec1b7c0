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

It is parsed by a tokenizer and a recursive-descent parser (:mod:`modelshelf.query_parser`) into
closures over a plain dict per version (a *row*, see :func:`row_of` and
:mod:`modelshelf.query_rows`); nothing is ever ``eval``-ed, no attribute is looked up by name,
and nothing can be called. Fields are a fixed list (:data:`FIELDS`) plus keys
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

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .query_parser import MAX_DEPTH as MAX_DEPTH
from .query_parser import MAX_LENGTH as MAX_LENGTH
from .query_parser import Parser, show
from .query_parser import QueryError as QueryError
from .query_parser import Token as Token
from .query_parser import tokenize as tokenize
from .query_rows import FIELDS as FIELDS
from .query_rows import MAPPINGS as MAPPINGS
from .query_rows import MISSING, is_number
from .query_rows import Field as Field
from .query_rows import Getter as Getter
from .query_rows import compare as compare
from .query_rows import row_of as row_of
from .query_rows import row_to_json as row_to_json

#: What a field reads when a version lacks it; callers compare row values with it.
_MISSING: Any = MISSING

RowT = TypeVar("RowT", bound=Mapping[str, Any])


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
    parser = Parser(text)
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
            parser = Parser(text)
            if parser.token.kind == "end":
                raise QueryError("empty sort term", 1)
            field = parser.field()
            if parser.token.kind != "end":
                raise parser.fail(
                    f"unexpected {parser.describe(parser.token)} in sort term {show(stripped)}"
                )
            keys.append(SortKey(field, descending))
    return keys


def _rank(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return 0, float(value)
    if is_number(value):
        return 0, value
    if isinstance(value, str):
        return 1, value
    return 2, json.dumps(value, sort_keys=True, default=str)


def sort_rows(rows: Sequence[RowT], keys: Sequence[SortKey]) -> list[RowT]:
    """Rows sorted by ``keys`` (stable; a missing value sorts last in either direction): numbers
    before strings before anything else; rows equal on every key keep version order."""
    ordered = sorted(rows, key=lambda row: row.get("version", 0))
    for key in reversed(keys):
        present = [r for r in ordered if key.field.get(r) is not MISSING]
        missing = [r for r in ordered if key.field.get(r) is MISSING]
        get = key.field.get
        present.sort(key=lambda r: _rank(get(r)), reverse=key.descending)
        ordered = present + missing
    return ordered


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
