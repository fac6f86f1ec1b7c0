"""Command line for model cards: ``modelshelf card REF``, and the card summary ``info`` shows.

A card was written by whoever uploaded the version: everything shown goes through
:func:`modelshelf.terminal.safe` (tabs and newlines kept in the full card, the only layout a
terminal cannot be driven by)."""

from __future__ import annotations

import json
from typing import Any

import click

from .cards import CARD_PATH, Card
from .records import ModelVersion
from .terminal import safe

#: The longest first paragraph ``info`` shows, in characters.
SUMMARY_CHARS = 600


def _text(text: str) -> str:
    """Card text for a terminal: control characters escaped, but tabs and newlines kept."""
    return "\t".join(safe(part, newlines=True) for part in text.split("\t"))


def echo_card_summary(shelf: Any, version: ModelVersion) -> None:
    """``info``'s lines about the card, if the version has one: front matter fields, first paragraph."""
    entry = next((f for f in version.files if f.path == CARD_PATH), None)
    if entry is None:
        return
    card: Card | None = shelf.card(version.ref)
    if card is None:
        return
    title = f" {safe(card.title)!r}" if card.title else ""
    click.echo(f"  card:{title} (`modelshelf card {safe(version.ref)}` shows it)")
    for key, value in card.front_matter.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        if len(shown) > 200:
            shown = shown[:200] + "..."
        click.echo(f"    {safe(key)}: {safe(shown)}")
    summary = card.summary
    if summary:
        if len(summary) > SUMMARY_CHARS:
            summary = summary[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " ..."
        click.echo(f"    {safe(summary)}")


@click.command("card")
@click.argument("ref")
@click.option(
    "--json", "as_json", is_flag=True, help="Front matter, body and text as JSON (exact)."
)
@click.pass_context
def card_command(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Print the model card stored with REF (NAME, NAME:N, NAME:latest or NAME@ALIAS)."""
    from .cli import current_shelf
    from .errors import NotFound

    shelf = current_shelf(ctx)
    version = shelf.get(ref)
    card = shelf.card(version.ref)
    if card is None:
        raise NotFound(
            f"{version.ref} has no model card (upload one with `modelshelf upload ... --card FILE`)"
        )
    if as_json:
        document = {
            "ref": version.ref,
            "path": CARD_PATH,
            "title": card.title,
            "summary": card.summary,
            "front_matter": card.front_matter,
            "body": card.body,
            "text": card.text,
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    text = _text(card.text)
    click.echo(text, nl=not text.endswith("\n"))
