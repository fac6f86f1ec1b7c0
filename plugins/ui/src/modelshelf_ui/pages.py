"""What the pages are made of: the packaged assets, the data paths, and the security policy.

The server and the static build share all of it, so both give the browser the same files.
Data lives under ``data/``: ``shelf.json``, ``models/<name>/_model.json`` and
``models/<name>/_versions/<n>.json``. A name segment never starts with ``_``, so the ``_model``
and ``_versions`` entries of ``team`` can never collide with a model called ``team/...``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from modelshelf.errors import InvalidName
from modelshelf.refs import check_name

#: The only files of the page itself: path below the site root -> content type.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "assets/app.js": "text/javascript; charset=utf-8",
    "assets/style.css": "text/css; charset=utf-8",
    "assets/favicon.svg": "image/svg+xml",
}

#: Scripts and styles come only from the page's own files (no inline script, no eval), data only
#: from its own JSON, nothing from anywhere else. ``index.html`` carries it as a meta tag as well,
#: so the static build opened from disk or a bucket is held to the same policy.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)

_VERSION = re.compile(r"[0-9]{1,10}")


@cache
def asset(path: str) -> bytes:
    """The bytes of one packaged asset (``index.html``, ``assets/app.js``...)."""
    if path not in ASSETS:
        raise KeyError(path)
    return resources.files(__package__).joinpath("assets", path.rsplit("/", 1)[-1]).read_bytes()


def shelf_path() -> str:
    return "data/shelf"


def model_path(name: str) -> str:
    return f"data/models/{check_name(name)}/_model"


def version_path(name: str, version: int) -> str:
    return f"data/models/{check_name(name)}/_versions/{int(version)}"


def parse_data_path(path: str) -> tuple[str, str | None, int | None] | None:
    """``data/...`` (without ``.json``) -> (kind, name, version), or None for anything else.

    Only paths this module itself makes are accepted: a model name must pass the core's name
    check (no ``..``, no segment starting with ``.`` or ``_``), a version is digits.
    """
    if path == "data/shelf":
        return ("shelf", None, None)
    if not path.startswith("data/models/"):
        return None
    rest = path[len("data/models/") :]
    name, sep, leaf = rest.rpartition("/")
    if not sep:
        return None
    if leaf == "_model":
        kind, number = "model", None
    else:
        name, sep, folder = name.rpartition("/")
        if not sep or folder != "_versions" or not _VERSION.fullmatch(leaf):
            return None
        kind, number = "version", int(leaf)
    try:
        check_name(name)
    except InvalidName:
        return None
    return (kind, name, number)


def to_json(document: Any) -> bytes:
    """Stable bytes (sorted keys, ASCII only), so that an unchanged document is an unchanged file.

    ``<``, ``>`` and ``&`` are written as ``\\u`` escapes (they occur only inside strings): the
    bytes stay inert even if something someday treats them as HTML.
    """
    text = json.dumps(
        document, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def to_script(path: str, document: Any) -> bytes:
    """The same document as a script calling ``modelshelfData(path, document)``.

    A page opened from disk (``file://``) may not ``fetch`` its neighbours, but it may load them
    as scripts. JSON is valid JavaScript here: ``ensure_ascii`` escapes U+2028 and U+2029 too.
    """
    return b"modelshelfData(" + to_json(path) + b"," + to_json(document) + b");\n"
