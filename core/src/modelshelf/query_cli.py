"""Command line for finding versions: what ``modelshelf ls NAME --where ... --sort ... --limit ...``
adds to ``ls`` (selection, the sort fields shown, ``--format csv``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

import click

from . import query
from .records import Alias, ModelVersion
from .terminal import safe


def parse_options(
    where: str | None, sort: Sequence[str]
) -> tuple[query.Query | None, list[query.SortKey]]:
    """Check ``--where`` and ``--sort`` before anything is read: a mistake is bad usage (one line)."""
    try:
        parsed = query.parse(where) if where is not None else None
    except query.QueryError as exc:
        raise click.UsageError(f"--where: {exc}") from None
    try:
        order = query.parse_order(list(sort))
    except query.QueryError as exc:
        raise click.UsageError(f"--sort: {exc}") from None
    return parsed, order


def select(
    shelf: Any,
    name: str,
    where: query.Query | None,
    sort: Sequence[str],
    limit: int | None,
) -> tuple[list[ModelVersion], dict[str, Alias]]:
    """The versions ``ls`` shows and the model's aliases (read once for both)."""
    aliases: dict[str, Alias] = shelf.aliases(name)
    if where is None and not sort and limit is None:
        return shelf.versions(name), aliases
    from .finding import find

    by_version: dict[int, list[str]] = {}
    for alias in aliases.values():
        if alias.version is not None:
            by_version.setdefault(alias.version, []).append(alias.alias)
    found = find(
        shelf.catalog, name, where, order_by=list(sort) or None, limit=limit, aliases=by_version
    )
    return found, aliases


def shown_fields(order: Sequence[query.SortKey]) -> list[query.SortKey]:
    """Sort fields worth a ``field=value`` column (the others are on every line already)."""
    always = {
        "version",
        "created_at",
        "created_by",
        "creator",
        "size",
        "total_size",
        "serializer",
        "aliases",
        "tags",
    }
    return [k for k in order if k.field.text not in always and not k.field.text.startswith("tags.")]


def sort_values(
    version: ModelVersion, fields: Sequence[query.SortKey], aliases: Sequence[str]
) -> str:
    row = query.row_of(version, aliases)
    parts = []
    for key in fields:
        value = key.field.get(row)
        if value is not query._MISSING:
            parts.append(f"{safe(key.field.text)}={safe(_plain(value))}")
    return " ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def echo_csv(versions: Sequence[ModelVersion], aliases: dict[str, Alias]) -> None:
    """One row per version: fixed columns, then one column per metric, param, tag and metadata key
    found in any of them. Non-string values are JSON; control characters other than newlines are
    shown escaped, as everywhere on a terminal (``--json`` has the exact values)."""
    by_version: dict[int, list[str]] = {}
    for alias in aliases.values():
        if alias.version is not None:
            by_version.setdefault(alias.version, []).append(alias.alias)
    groups = ("metrics", "params", "tags", "metadata")
    keys = {group: sorted({k for v in versions for k in getattr(v, group)}) for group in groups}
    header = [
        "name",
        "version",
        "created_at",
        "created_by",
        "serializer",
        "framework",
        "framework_version",
        "total_size",
        "aliases",
        "description",
    ]
    header += [f"{group}.{key}" for group in groups for key in keys[group]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe(h, newlines=True) for h in header])
    for v in versions:
        cells: list[Any] = [
            v.name,
            v.version,
            _time(v.created_at),
            v.created_by,
            v.serializer.name,
            v.framework.name if v.framework else "",
            v.framework.version if v.framework else "",
            v.total_size,
            " ".join(sorted(by_version.get(v.version, []))),
            v.description,
        ]
        for group in groups:
            values = getattr(v, group)
            cells += [_plain(values[key]) if key in values else "" for key in keys[group]]
        writer.writerow([safe(c if isinstance(c, str) else str(c), newlines=True) for c in cells])
    click.echo(out.getvalue(), nl=False)
