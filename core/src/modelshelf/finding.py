"""``shelf.find``: the versions of a model that match a ``where`` expression, sorted and limited.

Reading every manifest of 10,000 versions costs seconds even on a local disk (each is opened,
parsed and validated), so ``find`` keeps a *row summary* per model in the local record cache:
the row (see :func:`modelshelf.query.row_of`) of every version it has seen, by manifest etag.

Contract:

* **The listing is the source of truth.** Which versions exist and are live comes from one
  ``_versions/`` listing per call; a summary row is used only when its recorded etag is the
  listed etag of the manifest. Versions new or changed since are read (through
  :meth:`Catalog.versions <modelshelf.catalog.Catalog.versions>`, with its record cache and
  indexes, when many are) and their rows added; the summary is rewritten only then.
* **The cache is not trusted for answers.** The summary only chooses candidates. Every version
  returned is read from its manifest (validated as by :meth:`Shelf.get`, through the record cache
  by etag on object stores) and the expression is checked again on that record, so a damaged or
  doctored summary can hide a version but never return one that does not match, nor a record
  other than the shelf's.
* The summary is a cache entry like any other record copy: deleting the cache costs one slow
  query, nothing else. Two processes writing it race harmlessly (each entry carries its etag).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import layout, query
from .catalog import Catalog, Problem
from .errors import InvalidRecord, KeyNotFound, ModelshelfError
from .records import ModelVersion
from .refs import check_name
from .transfer import run_parallel

#: The summary format this modelshelf writes and reads (a different one is ignored and rebuilt).
SUMMARY_FORMAT = 1
#: Fewer changed versions than this are read one by one; more go through ``Catalog.versions``.
_READ_ONE_BY_ONE = 64


def _summary_key(name: str) -> str:
    # A record-cache key, never a key on the shelf: "#" cannot occur in a shelf key of a version.
    return f"{layout.versions_prefix(name)}#find-summary"


def _load_summary(catalog: Catalog, name: str) -> dict[int, tuple[str, dict[str, Any]]]:
    data = catalog.cache.get_record(catalog.url, _summary_key(name), f"format-{SUMMARY_FORMAT}")
    if data is None:
        return {}
    try:
        document = json.loads(data)
        if document.get("format") != SUMMARY_FORMAT or document.get("name") != name:
            return {}
        return {int(n): (str(e), dict(r)) for n, (e, r) in document["rows"].items()}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return {}  # a damaged copy is rebuilt, never trusted


def _store_summary(
    catalog: Catalog, name: str, rows: Mapping[int, tuple[str, Mapping[str, Any]]]
) -> None:
    document = {
        "format": SUMMARY_FORMAT,
        "name": name,
        "rows": {str(n): [etag, query.row_to_json(row)] for n, (etag, row) in rows.items()},
    }
    data = json.dumps(document, separators=(",", ":"), default=str).encode()
    catalog.cache.put_record(catalog.url, _summary_key(name), f"format-{SUMMARY_FORMAT}", data)


def _rows(catalog: Catalog, name: str) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """The listed etag and the row (without aliases) of every live version of ``name``."""
    problems: list[Problem] = []
    manifests, deleted = catalog.scan_versions(name, problems)
    catalog.warn_skipped(problems)
    if not manifests:
        raise catalog.model_not_found(name)
    live = {n: info.etag for n, info in manifests.items() if n not in deleted}
    summary = _load_summary(catalog, name)
    rows = {n: summary[n][1] for n, etag in live.items() if n in summary and summary[n][0] == etag}
    stale = sorted(set(live) - set(rows))
    if stale:
        if len(stale) < _READ_ONE_BY_ONE:

            def read(number: int) -> ModelVersion | None:
                try:
                    record = catalog.manifest(name, number, live[number])
                except (InvalidRecord, KeyNotFound) as exc:
                    catalog.warn_skipped(
                        [Problem(f"{name}:{number}", None, f"unreadable manifest: {exc}")]
                    )
                    return None
                return record if isinstance(record, ModelVersion) else None

            records = [
                r
                for r in run_parallel(read, stale, max_workers=catalog.record_workers)
                if r is not None
            ]
        else:
            records = catalog.versions(name)  # record cache and indexes; warns about damage itself
        for record in records:
            if record.version in live:
                rows[record.version] = query.row_of(record)
        kept = {n: (live[n], rows[n]) for n in rows}
        _store_summary(catalog, name, kept)
    elif set(summary) - set(live):  # versions deleted since: keep the summary small
        _store_summary(catalog, name, {n: (live[n], rows[n]) for n in rows})
    return live, rows


def find(
    catalog: Catalog,
    name: str,
    where: str | query.Query | None = None,
    *,
    order_by: str | Iterable[str] | None = None,
    limit: int | None = None,
    aliases: Mapping[int, Iterable[str]] | None = None,
) -> list[ModelVersion]:
    """The live versions of ``name`` matching ``where``, sorted by ``order_by`` (default: version
    number), at most ``limit``; see :meth:`modelshelf.Shelf.find`.

    ``aliases`` maps version numbers to the aliases pointing at them (read from the shelf when the
    expression or the order needs them and it is not given).
    """
    check_name(name)
    test = query.parse(where) if isinstance(where, str) else where
    order = query.parse_order(order_by)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ModelshelfError(f"limit must be a whole number >= 0, got {limit!r}")
    catalog.check_format(create=False)
    live, rows = _rows(catalog, name)
    wants_aliases = (test is not None and "aliases" in test.roots) or any(
        k.field.text == "aliases" for k in order
    )
    if aliases is None and wants_aliases:
        by_version: dict[int, list[str]] = {}
        for alias in catalog.aliases(name).values():
            if alias.version is not None:
                by_version.setdefault(alias.version, []).append(alias.alias)
        aliases = by_version
    if aliases is not None:
        for number, row in rows.items():
            row["aliases"] = sorted(aliases.get(number, ()))
    candidates = [row for row in rows.values() if test is None or test.matches(row)]
    ordered = (
        query.sort_rows(candidates, order)
        if order
        else sorted(candidates, key=lambda r: r["version"])
    )
    if limit is not None:
        ordered = ordered[:limit]
    numbers = [row["version"] for row in ordered]

    def read(number: int) -> ModelVersion | None:
        try:
            record = catalog.manifest(name, number, live[number])
        except (InvalidRecord, KeyNotFound):
            return None  # removed or damaged since it was listed: not an answer
        if not isinstance(record, ModelVersion):
            return None
        if test is not None:
            row = query.row_of(record, (aliases or {}).get(number, ()))
            if not test.matches(row):
                return None  # the summary was wrong about it (a doctored cache): never returned
        return record

    return [
        r for r in run_parallel(read, numbers, max_workers=catalog.record_workers) if r is not None
    ]
