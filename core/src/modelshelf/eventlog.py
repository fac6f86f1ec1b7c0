"""A model's append-only history: one create-only record per upload, alias move or deletion."""

from __future__ import annotations

import secrets
import warnings
from typing import Any

from . import convert, layout
from .catalog import Catalog, Problem, now
from .errors import AlreadyExists, InvalidRecord, KeyNotFound, ModelshelfError
from .lineage import current_user
from .records import Event
from .storage import ObjectInfo
from .transfer import run_parallel


def append(catalog: Catalog, name: str, action: str, **fields: Any) -> Event:
    """Append an event. What it records has already happened: a failure here is a warning."""
    event = Event(name=name, action=action, at=now(), by=current_user(), **fields)
    key = layout.log_key(name, event.at, secrets.token_hex(6))
    try:
        catalog.storage.put_if_absent(key, convert.to_json(event))
    except AlreadyExists:
        pass  # the key is random: only our own retried write can have created it
    except ModelshelfError as exc:
        warnings.warn(
            f"{name}: the {action} succeeded but its history entry could not be written ({exc})",
            stacklevel=3,
        )
    return event


def scan(catalog: Catalog, name: str) -> tuple[list[Event], list[Problem]]:
    """The model's events, oldest first, and the entries of its ``_log/`` that are not events of
    this model (stray keys, unreadable records, events of another model)."""
    prefix = layout.log_prefix(name)
    infos: list[ObjectInfo] = []
    problems: list[Problem] = []
    for info in sorted(catalog.storage.list(prefix), key=lambda i: i.key):
        filename = info.key[len(prefix) :]
        if "/" in filename or not filename.endswith(".json"):
            problems.append(
                Problem(name, None, f"stray key {info.key}: not an event (<time>-<random>.json)")
            )
        else:
            infos.append(info)

    def parse(data: bytes, source: str) -> Event:
        event = convert.from_json(data, Event, source=source)
        if event.name != name:
            raise InvalidRecord(
                f"{source} is an event of {event.name}, not of {name}; the shelf is damaged"
            )
        return event

    def read(info: ObjectInfo) -> Event | Problem | None:
        source = f"{catalog.url}/{info.key}"
        try:
            return catalog.read_record(info.key, lambda data: parse(data, source), info.etag)
        except KeyNotFound:
            return None
        except InvalidRecord as exc:
            return Problem(name, None, f"unreadable event {info.key}: {exc}")

    found = run_parallel(read, infos, max_workers=catalog.record_workers)
    problems.extend(r for r in found if isinstance(r, Problem))
    return [r for r in found if isinstance(r, Event)], problems
