"""Model cards: a markdown file stored with a version, in the Hugging Face model-card layout.

A card is uploaded with ``shelf.upload(..., card="README.md")`` (``--card FILE``) and stored as
one more file of the version, at :data:`CARD_PATH` (``card/README.md``). So it is a blob like any
other: content-addressed, verified on every read, covered by signatures over the file list, and
carried by ``copy``, ``export`` and ``download``; no manifest field and no new record were needed,
and a modelshelf that knows nothing of cards reads such a version as one with an extra file.
Loading a model is unaffected (serializers read their own files).

The card is markdown, optionally opening with YAML front matter between ``---`` lines::

    ---
    license: apache-2.0
    tags: [churn, tabular]
    datasets:
      - crm-2026-11
    ---
    # Churn model
    Gradient boosting on the November CRM extract...

The front matter is parsed by a deliberately tiny reader (no YAML dependency, nothing executed):
``key: value`` lines, inline ``[a, b]`` lists and ``- item`` block lists; nested structures
(``model-index``) are kept in :attr:`Card.text` but left out of :attr:`Card.front_matter`.
Everything in a card was written by whoever uploaded the version: show it through
:func:`modelshelf.terminal.safe` on a terminal, and as text (never HTML) in a browser.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .errors import IntegrityError, KeyNotFound, ModelshelfError

if TYPE_CHECKING:
    from .catalog import Catalog
    from .records import ModelVersion

#: Where a version's card lives among its files.
CARD_PATH = "card/README.md"
#: The largest card accepted at upload and read back (a card is a page of text, not data).
MAX_CARD_BYTES = 1 << 20

_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:(?:\s+(.*))?$")


@attrs.frozen
class Card:
    """A model card as stored: its text (newlines normalised to ``\\n``), front matter and body."""

    text: str
    #: Simple front matter fields: strings, or lists of strings.
    front_matter: dict[str, str | list[str]]
    #: The markdown after the front matter.
    body: str

    @property
    def title(self) -> str | None:
        """The first ``# `` heading of the body, if any."""
        for line in self.body.splitlines():
            if line.startswith("# "):
                return line[2:].strip() or None
        return None

    @property
    def summary(self) -> str:
        """The first paragraph of prose in the body (headings, comments and fences skipped)."""
        paragraph: list[str] = []
        in_comment = in_fence = False
        for line in self.body.splitlines():
            stripped = line.strip()
            if in_comment:
                in_comment = "-->" not in stripped
                continue
            if stripped.startswith("```") or stripped.startswith("~~~"):
                in_fence = not in_fence
                if paragraph:
                    break
                continue
            if in_fence:
                continue
            if stripped.startswith("<!--"):
                in_comment = "-->" not in stripped
                if paragraph:
                    break
                continue
            if not stripped or stripped.startswith("#"):
                if paragraph:
                    break
                continue
            paragraph.append(stripped)
        return " ".join(paragraph)


def _scalar(text: str) -> str:
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end > 0:
            return text[1:end]
    if " #" in text:  # a trailing YAML comment
        text = text.split(" #", 1)[0].rstrip()
    return text


def _inline_list(text: str) -> list[str] | None:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    return [_scalar(item) for item in inner.split(",")] if inner else []


def parse_front_matter(lines: list[str]) -> dict[str, str | list[str]]:
    """The simple fields of YAML front matter lines; anything nested or unusual is skipped."""
    fields: dict[str, str | list[str]] = {}
    current: str | None = None  # a key whose value is on the following lines
    items: list[str] = []
    nested = False
    for line in [*lines, "end:"]:  # the sentinel closes the last key
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t-":
            stripped = line.strip()
            if current is not None and stripped.startswith("- ") and not nested:
                item = stripped[2:]
                if _KEY.match(item) or item.startswith(("[", "{")):
                    nested = True  # a list of mappings (model-index): not a simple field
                else:
                    items.append(_scalar(item))
            elif current is not None:
                nested = True
            continue
        if current is not None and items and not nested:
            fields[current] = items
        current, items, nested = None, [], False
        match = _KEY.match(line)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        if value is None or not value.strip():
            current = key
        elif value.strip().startswith(("{", "|", ">", "&", "*", "!")):
            continue  # flow mappings, block scalars, anchors, tags: beyond a tiny reader
        else:
            listed = _inline_list(value)
            fields[key] = listed if listed is not None else _scalar(value)
    fields.pop("end", None)
    return fields


def parse_card(text: str) -> Card:
    """Split a card's text into front matter and body (front matter is optional)."""
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        for end in range(1, min(len(lines), 2000)):
            if lines[end].strip() in ("---", "..."):
                return Card(text, parse_front_matter(lines[1:end]), "\n".join(lines[end + 1 :]))
    return Card(text, {}, text)


def check_card_file(path: str | os.PathLike[str]) -> Path:
    """The card file to upload: an existing UTF-8 text file of at most :data:`MAX_CARD_BYTES`."""
    card = Path(path)
    if not card.is_file():
        raise ModelshelfError(f"model card {card} is not a file")
    size = card.stat().st_size
    if size > MAX_CARD_BYTES:
        raise ModelshelfError(
            f"model card {card} is {size} bytes; a card is at most {MAX_CARD_BYTES} bytes of markdown"
        )
    try:
        card.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelshelfError(
            f"model card {card} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return card


def read_card(catalog: Catalog, version: ModelVersion) -> Card | None:
    """The card stored with ``version`` (verified against its sha256), or ``None``."""
    entry = next((f for f in version.files if f.path == CARD_PATH), None)
    if entry is None:
        return None
    if entry.size > MAX_CARD_BYTES:
        raise ModelshelfError(
            f"{version.ref}: its model card is {entry.size} bytes, over the {MAX_CARD_BYTES} limit"
        )
    cached = catalog.cache.blob_path(entry.sha256)
    data: bytes | None = None
    if catalog.cache.has(entry):
        try:
            data = cached.read_bytes()
        except OSError:
            data = None
        if data is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
            data = None  # the cache is not trusted: read the shelf's copy instead
    if data is None:
        from . import layout, packing

        try:
            if entry.pack is not None:
                data = packing.read_packed(catalog.storage, version, entry)
            else:
                data = catalog.storage.read(layout.blob_key(entry.sha256)).data
        except KeyNotFound:
            raise IntegrityError(
                f"{version.ref}: the blob of its model card ({entry.sha256[:12]}...) is missing from "
                f"shelf {catalog.url}; run `modelshelf verify`"
            ) from None
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{version.ref}: its model card does not match its sha256; run `modelshelf verify`"
            )
    return parse_card(data.decode("utf-8", errors="replace"))
