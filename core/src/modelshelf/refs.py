"""Model names, aliases, references (``churn``, ``churn:3``, ``churn:latest``, ``churn@prod``) and
the relative file paths stored in manifests.

Everything here is checked before any I/O: a name that could escape the shelf root, collide with
the registry's own keys or confuse a backend never reaches storage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from .errors import InvalidName, InvalidRecord

MAX_NAME_LENGTH = 200
#: Version keys have ten digits; a larger number could never be listed.
MAX_VERSION = 9_999_999_999
_VERSION_NUMBER = re.compile(r"[0-9]{1,10}")
_VERSION_FILE = re.compile(r"([0-9]{10})\.(json|deleted)")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (
    "names are one or more '/'-separated segments of letters, digits, '.', '_' and '-', each "
    f"starting with a letter or digit, at most {MAX_NAME_LENGTH} characters in all"
)


def _show(text: str) -> str:
    shown = repr(text[:60])
    return shown + ("..." if len(text) > 60 else "")


def check_name(name: object, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidName`."""
    if not isinstance(name, str):
        raise InvalidName(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidName(f"{what} is empty: {NAME_RULE}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} is {len(name)} characters long: {NAME_RULE}")
    for segment in name.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise InvalidName(f"invalid {what} {_show(name)}: {NAME_RULE}")
    return name


def check_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias, else raise :class:`InvalidName`.

    An alias is one segment: its record is the single key ``_aliases/<alias>.json``, so a ``/``
    would make a directory that shadows another alias's key (``prod.json/eu`` under ``prod.json``).
    """
    if isinstance(alias, str) and "/" in alias:
        raise InvalidName(f"invalid alias {_show(alias)}: an alias is one segment, without '/'")
    name = check_name(alias, "alias")
    if name == "latest":
        raise InvalidName(
            "'latest' is reserved (it always means the newest version): pick another alias"
        )
    if name.isdigit():  # the segment rule already limits aliases to ASCII
        raise InvalidName(f"alias {name!r} is all digits and would read as a version number")
    return name


def check_version(version: object) -> int:
    """Return ``version`` if it is a version number, else raise :class:`InvalidName`.

    Manifest keys hold ten digits, so a larger number could never be listed.
    """
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidName(f"version must be an integer, got {_show(repr(version))}")
    if not 1 <= version <= MAX_VERSION:
        # Huge ints cannot even be printed (sys.get_int_max_str_digits).
        shown = str(version) if abs(version) < 10**30 else "a larger number"
        raise InvalidName(f"version must be from 1 to {MAX_VERSION}, got {shown}")
    return version


def parse_version_file(filename: str) -> tuple[int, str] | None:
    """``0000000042.json`` -> ``(42, "json")``, ``0000000042.deleted`` -> ``(42, "deleted")``.

    ``None`` for anything else, including numbers outside 1..MAX_VERSION and non-ASCII digits
    (which :class:`int` would accept), so a stray key can never pose as a version.
    """
    match = _VERSION_FILE.fullmatch(filename)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1)), match.group(2)


@attrs.frozen
class Ref:
    """A parsed reference: exactly one of ``version``/``alias`` is set, or neither (= latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: object) -> Ref:
    """Parse ``name``, ``name:N``, ``name:latest`` or ``name@alias``."""
    if not isinstance(ref, str):
        raise InvalidName(f"reference must be a string like 'churn:3', got {type(ref).__name__}")
    if "@" in ref:
        name, _, alias = ref.rpartition("@")
        return Ref(check_name(name), alias=check_alias(alias))
    if ":" in ref:
        name, _, version = ref.rpartition(":")
        check_name(name)
        if version == "latest":
            return Ref(name)
        # ASCII digits only: str.isdigit() also accepts '²' and Arabic-Indic digits.
        if not _VERSION_NUMBER.fullmatch(version) or int(version) < 1:
            raise InvalidName(
                f"invalid version {version!r} in reference {_show(ref)}: use name:N, "
                "name:latest or name@alias"
            )
        return Ref(name, version=int(version))
    return Ref(check_name(ref))


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def check_file_path(path: object) -> str:
    """Validate a relative, ``/``-separated file path stored in a manifest.

    Refuses anything that could land outside a destination directory on any platform: absolute
    paths, ``..``, empty or ``.`` segments, backslashes, drive letters, NUL and control characters.
    """
    if not isinstance(path, str) or not path:
        raise InvalidRecord(f"file path must be a non-empty string, got {path!r}")
    if len(path) > 1024:
        raise InvalidRecord(f"file path is {len(path)} characters long (limit 1024)")
    if path.startswith("/") or "\\" in path or _WINDOWS_DRIVE.match(path):
        raise InvalidRecord(f"file path {_show(path)} is not relative")
    if any(ord(c) < 32 for c in path):
        raise InvalidRecord(f"file path {_show(path)} contains control characters")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidRecord(f"file path {_show(path)} has an empty, '.' or '..' segment")
    return path


def check_file_list(paths: Iterable[str]) -> None:
    """Refuse a manifest's file list naming a path twice, or one path both as a file and as a
    directory (``a`` and ``a/b``): materialised, one entry would overwrite or block the other.

    Linear in the total length of the paths (a tree of segments), so a large hostile manifest
    costs no more to check than to parse.
    """
    tree: dict[str, Any] = {}
    for path in paths:
        parts = path.split("/")
        node = tree
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is True:
                parent = "/".join(parts[: depth + 1])
                raise InvalidRecord(f"lists {_show(parent)} both as a file and as a directory")
            node = child
        existing = node.get(parts[-1])
        if existing is True:
            raise InvalidRecord(f"lists file {_show(path)} twice")
        if existing is not None:
            raise InvalidRecord(f"lists {_show(path)} both as a file and as a directory")
        node[parts[-1]] = True
