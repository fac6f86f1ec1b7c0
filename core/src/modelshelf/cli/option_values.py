"""Reading option values: ``KEY=VALUE`` pairs, cache sizes and gc grace periods.

A value that cannot be read is bad usage (exit 2), reported as a ``click.BadParameter`` that
names the option and shows what a good value looks like.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import click


def _storage_options(values: Iterable[str], flag: str = "--option") -> dict[str, Any]:
    """``-o KEY=VALUE`` pairs; values that read as JSON (numbers, true/false) are converted."""
    options: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=flag)
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _parse_size(text: str) -> int:
    units = {
        "": 1,
        "b": 1,
        "k": 1 << 10,
        "kb": 1 << 10,
        "m": 1 << 20,
        "mb": 1 << 20,
        "g": 1 << 30,
        "gb": 1 << 30,
        "t": 1 << 40,
        "tb": 1 << 40,
    }
    stripped = text.strip().lower().replace("ib", "b")
    number = stripped.rstrip("kmgtb")
    unit = stripped[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a size like 500MB or 10GB", param_hint="--max-size"
        ) from None
    # float() also reads "nan" and "inf", which no cache size can be.
    if unit not in units or not math.isfinite(value) or value < 0:
        raise click.BadParameter(
            f"{text!r} is not a size like 500MB or 10GB", param_hint="--max-size"
        )
    return int(value * units[unit])


#: The longest grace period gc accepts: a century, far more than anyone needs, and well inside
#: what a datetime can subtract from now.
MAX_GC_GRACE_SECONDS = 100 * 365 * 86400


def _grace_seconds(text: str, source: str) -> float:
    """A gc grace period in seconds from ``--grace`` or ``MODELSHELF_GC_GRACE``, checked."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_GC_GRACE_SECONDS):
        raise click.BadParameter(
            f"{text!r} is not a number of seconds from 0 to {MAX_GC_GRACE_SECONDS} (100 years), "
            "e.g. 86400 for a day",
            param_hint=source,
        )
    return value


def _pairs(values: Iterable[str], what: str, number: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        if number:
            try:
                result[key] = float(value)
            except ValueError:
                raise click.BadParameter(
                    f"{key}={value!r}: metric values must be numbers", param_hint=what
                ) from None
        else:
            result[key] = value
    return result
