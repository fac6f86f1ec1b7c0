"""Showing values on the terminal: sizes, times and records as JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

_json_converter: Any = None


def _json_time(value: dt.datetime) -> str:
    from ..convert import converter

    try:
        return str(converter.unstructure(value))
    except (OverflowError, ValueError):
        # At the edges of the calendar (year 1 at +05:00) UTC is out of range: show the time as
        # recorded, with its own offset, rather than fail the whole listing.
        return value.isoformat()


def _emit_json(value: Any) -> None:
    """Records as JSON; ``json.dumps`` escapes control characters, so stored text stays inert."""
    global _json_converter
    if _json_converter is None:
        from ..convert import converter

        _json_converter = converter.copy()
        _json_converter.register_unstructure_hook(dt.datetime, _json_time)
    click.echo(
        json.dumps(_json_converter.unstructure(value), indent=2, sort_keys=True, default=str)
    )


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _when_timestamp(seconds: float) -> str:
    """A file's modification time; any value a file system can hold is shown, never raised on."""
    try:
        return _when(dt.datetime.fromtimestamp(seconds, dt.UTC))
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.0f} s after 1970"


def _when(value: dt.datetime) -> str:
    """A stored time in local time; at the edges of the calendar (year 1 or 9999, where the
    conversion would leave the representable range) in its own recorded offset instead."""
    try:
        value = value.astimezone()
    except (OverflowError, ValueError, OSError):
        offset = value.strftime("%z") or "+0000"
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d} {offset}"
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}"
