"""Checking the options a storage backend takes, and keeping credentials out of echoed URLs.

Backends import these names from :mod:`modelshelf.objectstore`, which re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import StorageError

__all__ = ["check_options", "option_value", "without_userinfo"]

_USERINFO = re.compile(r"//.*@")


def without_userinfo(text: str) -> str:
    """Drop any ``user:password@`` part before echoing a URL in a message.

    Everything from ``//`` to the last ``@`` goes: a secret may contain ``/``, which would make a
    URL parser take part of it for the path.
    """
    return _USERINFO.sub("//", text)


def check_options(given: Iterable[str], known: Sequence[str], where: str) -> None:
    """Refuse option names that are not ``known``, naming them and every known one."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise StorageError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {names} for {where}; "
            f"known options: {', '.join(known)}"
        )


#: kind -> (converter, what a valid value is)
_KINDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "count": (lambda v: _checked(int(v), v, lambda n: n >= 1, float), "a positive integer"),
    "seconds": (lambda v: _checked(float(v), v, lambda s: s > 0), "> 0 seconds"),
    "seconds_or_zero": (lambda v: _checked(float(v), v, lambda s: s >= 0), ">= 0 seconds"),
    "text": (
        lambda v: _checked(v, v, lambda s: isinstance(s, str) and s != ""),
        "a non-empty string",
    ),
    "flag": (lambda v: _checked(v, v, lambda b: isinstance(b, bool)), "True or False"),
}


def _checked(result: Any, value: Any, valid: Callable[[Any], bool], *refused: type) -> Any:
    if (isinstance(value, bool) and result is not value) or isinstance(value, refused):
        raise ValueError
    if not valid(result):
        raise ValueError
    return result


def option_value(name: str, value: Any, kind: str, where: str) -> Any:
    """``value`` (a keyword value or a query-string text) converted to ``kind``, or a one-line
    StorageError naming the option: ``count``, ``seconds``, ``seconds_or_zero``, ``text``,
    ``flag``."""
    convert, expected = _KINDS[kind]
    try:
        return convert(value)
    except (TypeError, ValueError):
        shown = without_userinfo(str(value)) if isinstance(value, str) else value
        raise StorageError(
            f"option {name}={shown!r} for {where}: {name} must be {expected}"
        ) from None
