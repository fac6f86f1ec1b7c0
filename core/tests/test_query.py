"""The ``where`` expression language: every operator and field kind on rows, and hostile input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from modelshelf import query
from modelshelf.query import MAX_DEPTH, MAX_LENGTH, QueryError


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "team/churn",
        "version": 7,
        "created_at": dt.datetime(2026, 11, 15, 12, 30, tzinfo=dt.UTC).timestamp(),
        "created_by": "ana@host",
        "description": "weekly retrain on the November extract",
        "framework": "sklearn",
        "framework_version": "1.5.2",
        "serializer": "sklearn-skops",
        "serializer_format": "skops",
        "serializer_safe": True,
        "total_size": 4096,
        "card": False,
        "metrics": {"auc": 0.93, "f1": 0.8, "val-loss": 0.21, "dotted.name": 1.0},
        "params": {
            "C": 1.0,
            "depth": 6,
            "solver": "lbfgs",
            "layers": [64, 32],
            "opt": {"lr": 0.01},
            "nothing": None,
        },
        "tags": {"data": "2026-11", "epochs": "12", "team": "risk"},
        "metadata": {"owner": "ana", "team": {"name": "risk", "size": 4}},
        "aliases": ["prod", "staging"],
    }
    row.update(overrides)
    return row


def matches(expression: str, row: dict[str, Any] | None = None) -> bool:
    return query.parse(expression).matches(row if row is not None else _row())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # comparison operators on numbers (metrics)
        ("metrics.auc == 0.93", True),
        ("metrics.auc = 0.93", True),
        ("metrics.auc != 0.93", False),
        ("metrics.auc > 0.9", True),
        ("metrics.auc > 0.93", False),
        ("metrics.auc >= 0.93", True),
        ("metrics.auc < 0.95", True),
        ("metrics.auc < 0.93", False),
        ("metrics.auc <= 0.93", True),
        ("metrics.auc >= 1", False),
        ("metrics.auc > -1", True),
        ("metrics.auc < 9.3e-1", False),
        ("metrics.'val-loss' < 0.5", True),
        ("metrics.val-loss < 0.5", True),
        ('metrics."dotted.name" == 1', True),
        # strings (tags), and numbers against strings that read as numbers
        ("tags.data == '2026-11'", True),
        ('tags.data == "2026-11"', True),
        ("tags.data != '2026-10'", True),
        ("tags.data >= '2026-10'", True),
        ("tags.data < '2026-10'", False),
        ("tags.epochs > 10", True),
        ("tags.epochs == 12", True),
        ("tags.team > 3", False),
        ("tags.team != 3", True),
        # params: numbers, strings, lists, nested objects, null
        ("params.C == 1", True),
        ("params.depth in [4, 6, 8]", True),
        ("params.depth not in [4, 8]", True),
        ("params.solver in ['adam', 'lbfgs']", True),
        ("params.solver not in ['lbfgs']", False),
        ("params.layers contains 64", True),
        ("params.layers contains 16", False),
        ("params.opt.lr < 0.1", True),
        ("params.opt.momentum exists", False),
        ("params.nothing == null", True),
        ("params.nothing exists", True),
        ("params.C == null", False),
        # metadata, nested
        ("metadata.owner == 'ana'", True),
        ("metadata.team.name == 'risk'", True),
        ("metadata.team.size >= 4", True),
        ("metadata.team contains 'size'", True),
        ("metadata contains 'owner'", True),
        ("metadata.owner.x exists", False),
        # creator, description, name, version, size, framework, serializer, card
        ("created_by == 'ana@host'", True),
        ("creator == 'ana@host'", True),
        ("creator contains '@host'", True),
        ("description contains 'November'", True),
        ("name == 'team/churn'", True),
        ("version == 7", True),
        ("version >= 8", False),
        ("version in [1, 7]", True),
        ("size > 1000", True),
        ("total_size == 4096", True),
        ("framework == 'sklearn'", True),
        ("framework.name == 'sklearn'", True),
        ("framework.version == '1.5.2'", True),
        ("serializer == 'sklearn-skops'", True),
        ("serializer.format == 'skops'", True),
        ("serializer.safe == true", True),
        ("serializer.safe == True", True),
        ("serializer.safe != false", True),
        ("serializer.safe > false", False),
        ("card == false", True),
        # aliases
        ("aliases contains 'prod'", True),
        ("aliases contains 'dev'", False),
        ("not aliases contains 'dev'", True),
        # dates: a bare date is the whole UTC day
        ("created_at == '2026-11-15'", True),
        ("created_at != '2026-11-15'", False),
        ("created_at <= '2026-11-15'", True),
        ("created_at < '2026-11-15'", False),
        ("created_at > '2026-11-15'", False),
        ("created_at >= '2026-11-15'", True),
        ("created_at > '2026-11-14'", True),
        ("created_at < '2026-11-16'", True),
        ("created_at > '2026-11-15T12:00:00Z'", True),
        ("created_at < '2026-11-15T12:00:00+00:00'", False),
        ("created_at == '2026-11-15T12:30:00'", True),
        ("created_at > '2026-11-15T13:00:00+02:00'", True),
        ("created_at in ['2026-11-14', '2026-11-15']", True),
        ("created_at not in ['2026-11-15']", False),
        # logic
        ("metrics.auc >= 0.9 and tags.data == '2026-11'", True),
        ("metrics.auc >= 0.95 and tags.data == '2026-11'", False),
        ("metrics.auc >= 0.95 or tags.data == '2026-11'", True),
        ("not metrics.auc >= 0.95", True),
        ("not (metrics.auc >= 0.9 and tags.data == '2026-11')", False),
        ("(version == 1 or version == 7) and (framework == 'sklearn')", True),
        ("version == 1 or version == 2 and version == 7", False),  # and binds tighter than or
        ("version == 7 or version == 2 and version == 1", True),
        ("metrics.auc > 0 AND tags.data exists Or version == 0", True),
        # exists and missing fields: every comparison with a missing field is false, != included
        ("metrics.auc exists", True),
        ("metrics.precision exists", False),
        ("metrics.precision != 1", False),
        ("metrics.precision < 1", False),
        ("not metrics.precision == 1", True),
        ("tags.nope in ['a']", False),
        ("tags.nope not in ['a']", False),
    ],
)
def test_operators_and_fields(expression: str, expected: bool) -> None:
    assert matches(expression) is expected


def test_keywords_are_case_insensitive_fields_are_not() -> None:
    assert matches("NOT metrics.auc > 1 AND tags.data EXISTS")
    with pytest.raises(QueryError, match="unknown field 'METRICS'"):
        query.parse("METRICS.auc > 0")


def test_missing_framework_and_empty_lists() -> None:
    row = _row(framework=query._MISSING, aliases=[])
    assert not matches("framework == 'sklearn'", row)
    assert not matches("framework exists", row)
    assert not matches("aliases contains 'prod'", row)
    assert matches("version in []", row) is False


def test_bool_is_not_a_number() -> None:
    assert not matches("serializer.safe == 1")
    assert not matches("metrics.auc == true")


def test_sorting_missing_last_in_both_directions() -> None:
    rows = [
        _row(version=n, metrics={"auc": auc} if auc is not None else {})
        for n, auc in [(1, 0.5), (2, None), (3, 0.9), (4, 0.7)]
    ]
    up = query.sort_rows(rows, query.parse_order("metrics.auc"))
    down = query.sort_rows(rows, query.parse_order(["-metrics.auc"]))
    assert [r["version"] for r in up] == [1, 4, 3, 2]
    assert [r["version"] for r in down] == [3, 4, 1, 2]
    by_two = query.sort_rows(rows, query.parse_order("framework,-version"))
    assert [r["version"] for r in by_two] == [4, 3, 2, 1]


def test_sort_terms_are_fields_only() -> None:
    for bad, column in [
        ("-metrics.auc.__class__", 13),
        ("open()", 5),
        ("version desc", 9),
        ("", 1),
    ]:
        with pytest.raises(QueryError) as caught:
            query.parse_order(bad)
        assert caught.value.column == column, (bad, str(caught.value))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("metrics.auc >= ", "expected a value after '>=' at column 16"),
        ("metrics.auc >= 0.9 and tags.data ==", "expected a value after '==' at column 36"),
        ("metrics.auc >= and tags.data == '2026-11'", "expected a value after '>=' at column 16"),
        (
            "metrics.auc 0.9",
            "expected a comparison (== != < <= > >=), 'in', 'contains' or 'exists' after 'metrics.auc' but found '0.9' at column 13",
        ),
        ("tags.data == '2026-11", "unterminated string at column 14"),
        ("(version == 1", "expected ')' but found the end of the expression at column 14"),
        ("version == 1)", "unexpected ')' (expected 'and', 'or' or the end) at column 13"),
        (
            "version == 1 version == 2",
            "unexpected 'version' (expected 'and', 'or' or the end) at column 14",
        ),
        ("", "empty expression at column 1"),
        ("   ", "empty expression at column 4"),
        ("owner == 'ana'", "unknown field 'owner'"),
        ("metrics.auc.mean > 1", "metrics.KEY takes one key; 'metrics.auc.mean' has 2 at column 1"),
        (
            "framework.vendor == 'x'",
            "'framework.vendor' is not a field (did you mean 'framework'?) at column 1",
        ),
        ("version in 1, 2", "expected '[' after 'in' but found '1' at column 12"),
        ("version in [1 2]", "expected ',' or ']' but found '2' at column 15"),
        ("version not 1", "expected 'in' after 'not' but found '1' at column 13"),
        (
            "created_at > 1",
            "created_at compares with an ISO date or time such as '2026-11-01' at column 14",
        ),
        ("created_at > 'yesterday'", "'yesterday' is not an ISO date or time"),
        ("version > 1e400", "number '1e400' is out of range at column 11"),
        ("metrics. == 1", "expected a key after '.' but found '==' at column 10"),
        ("version == x", "expected a value after '==' at column 12"),
        (
            "and == 1",
            "expected a field (such as metrics.auc or tags.data) but found 'and' at column 1",
        ),
    ],
)
def test_mistakes_name_the_column(expression: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        query.parse(expression)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # attribute access and dunder names
        (
            "metrics.auc.__class__ == 1",
            "names starting with '__' are not allowed ('__class__') at column 13",
        ),
        ("__import__ == 1", "names starting with '__' are not allowed ('__import__') at column 1"),
        (
            "params.__dict__ exists",
            "names starting with '__' are not allowed ('__dict__') at column 8",
        ),
        (
            "version.real == 7",
            "'version.real' is not a field (did you mean 'version'?) at column 1",
        ),
        ("tags.data.upper == 'X'", "tags.KEY takes one key"),
        # calls
        ("__import__('os').system('id')", "names starting with '__' are not allowed"),
        ("open('/etc/passwd') == 1", "function calls are not allowed ('open(') at column 5"),
        ("params.x.lower() == 'a'", "function calls are not allowed ('lower(') at column 15"),
        ("eval('1') == 1", "function calls are not allowed ('eval(') at column 5"),
        ("version == len('x')", "expected a value after '==' at column 12"),
        # Python syntax that is not the language
        ("lambda: 1", "unexpected character ':' at column 7"),
        ("version == 1; import os", "unexpected character ';' at column 13"),
        ("metrics['auc'] > 1", "but found '[' at column 8"),
        ("version == 1 if True else 2", "unexpected 'if'"),
        ("{'a': 1}", "unexpected character '{' at column 1"),
        ("version == 1 + 1", "unexpected character '+' at column 14"),
        ("`id`", "unexpected character '`' at column 1"),
        ("version == 1 \x1b[2J", "unexpected character '\\x1b' at column 14"),
    ],
)
def test_hostile_expressions_are_refused_in_one_line(expression: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        query.parse(expression)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_too_long_input_is_refused_before_parsing() -> None:
    with pytest.raises(QueryError, match=f"limit {MAX_LENGTH}"):
        query.parse("version == 1 or " * 1000 + "version == 2")
    query.parse(" or ".join(["version == 1"] * 200))  # long but under the limit: fine


def test_deep_nesting_is_refused() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "version == 1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(
        QueryError, match=f"nested deeper than {MAX_DEPTH} levels at column {MAX_DEPTH + 1}"
    ):
        query.parse(deep)
    with pytest.raises(QueryError, match="nested deeper"):
        query.parse("not " * 1000 + "version == 1")
    with pytest.raises(QueryError):  # far beyond Python's recursion limit: still one clean error
        query.parse("(" * 4000)
    ok = "(" * (MAX_DEPTH - 1) + "version == 7" + ")" * (MAX_DEPTH - 1)
    assert matches(ok)


def test_not_a_string() -> None:
    with pytest.raises(QueryError, match="must be a string"):
        query.parse(42)  # type: ignore[arg-type]


def test_escapes_in_strings() -> None:
    assert matches(r"tags.q == 'it\'s'", _row(tags={"q": "it's"}))
    assert matches(r'tags.q == "a\\b"', _row(tags={"q": "a\\b"}))
    assert matches(
        r"tags.q == 'a\nb'", _row(tags={"q": "a\\nb"})
    )  # no other escapes: kept as written
