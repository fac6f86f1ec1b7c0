"""Opening the shelf a command works on, from ``--shelf`` and ``-o`` (once per run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def _shelf(ctx: click.Context) -> Any:
    from ..shelf import open as open_shelf

    obj = ctx.find_root().obj
    if obj.get("shelf") is None:
        obj["shelf"] = _open_with_options(open_shelf, obj.get("url"), obj.get("options", {}), "-o")
    return obj["shelf"]


def current_shelf(ctx: click.Context) -> Any:
    """The shelf named by ``--shelf`` and ``-o`` (opened once per run): for plugin commands, which
    receive ``ctx`` through ``@click.pass_context``."""
    return _shelf(ctx)


def _open_with_options(
    opener: Callable[..., Any], url: str | None, options: dict[str, Any], flag: str
) -> Any:
    """Open a shelf; an option its storage plugin does not take is bad usage, not a crash.

    Storage factories receive ``-o`` options as keyword arguments, so an unknown one surfaces as
    the factory's ``TypeError``.
    """
    try:
        return opener(url, **options)
    except TypeError as exc:
        if not options or "argument" not in str(exc):
            raise
        names = ", ".join(f"{flag} {key}" for key in sorted(options))
        raise click.UsageError(
            f"the storage plugin for {url or 'the default shelf'} does not accept {names} ({exc}); "
            "see that plugin's documentation for its options"
        ) from None
