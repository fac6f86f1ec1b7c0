"""Commands that change a shelf: ``upload``, ``alias set|rm|ls`` and ``delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..terminal import safe
from .formatting import _emit_json, _human_size, _when
from .opening import _shelf
from .option_values import _pairs, _storage_options


def _check_file_serializer(name: str, obj: Any) -> None:
    """From the command line PATHS are files: a serializer of in-memory objects (sklearn-joblib)
    would store a pickled path, so only one that takes files is accepted."""
    from ..plugins import get_registry

    entry = get_registry().serializers().get(name)
    if entry is None:
        return  # upload names what is installed, or why a plugin that has it is unavailable
    serializer = entry.serializer
    first = obj[0] if isinstance(obj, list) else obj
    if serializer.claim_depth(first) is None and serializer.files(obj) is None:
        raise click.UsageError(
            f"serializer {name!r} stores Python objects, not files, and PATHS are files: upload "
            f"with the Python API instead, shelf.upload(NAME, obj, serializer={name!r})"
        )


@click.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="User metadata (repeatable).")
@click.option("--metric", multiple=True, metavar="KEY=NUMBER", help="A metric (repeatable).")
@click.option(
    "--param", multiple=True, metavar="KEY=VALUE", help="A training parameter (repeatable)."
)
@click.option("--tag", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--description", default="", help="Free text describing this version.")
@click.option(
    "--extra",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="An extra file stored under extra/ (repeatable).",
)
@click.option(
    "--alias", "aliases", multiple=True, help="Point this alias at the new version (repeatable)."
)
@click.option(
    "--card",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A markdown model card (YAML front matter allowed), stored as card/README.md.",
)
@click.option(
    "--serializer",
    "serializer_name",
    metavar="NAME",
    help="The serializer to store PATHS with (one that takes files; default: the one claiming them, usually `files`).",
)
@click.option(
    "--serializer-option",
    "serializer_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option for the serializer's save (repeatable); values that read as JSON (numbers, true/false) are converted.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
@click.pass_context
def upload(
    ctx: click.Context,
    name: str,
    paths: tuple[Path, ...],
    meta: tuple[str, ...],
    metric: tuple[str, ...],
    param: tuple[str, ...],
    tag: tuple[str, ...],
    description: str,
    extra: tuple[Path, ...],
    aliases: tuple[str, ...],
    serializer_name: str | None,
    serializer_options: tuple[str, ...],
    as_json: bool,
    card: Path | None,
) -> None:
    """Upload files or directories in PATHS as a new version of model NAME."""
    obj: Any = list(paths) if len(paths) > 1 else paths[0]
    options = _storage_options(serializer_options, "--serializer-option")
    if serializer_name is not None:
        _check_file_serializer(serializer_name, obj)
    shelf = _shelf(ctx)
    version = shelf.upload(
        name,
        obj,
        metadata=_pairs(meta, "--meta"),
        metrics=_pairs(metric, "--metric", number=True),
        params=_pairs(param, "--param"),
        tags=_pairs(tag, "--tag"),
        description=description,
        extra_files=list(extra) or None,
        serializer=serializer_name,
        options=options or None,
        card=card,
    )
    for alias in aliases:
        shelf.set_alias(name, alias, version.version)
    if as_json:
        _emit_json(version)
    else:
        click.echo(
            f"Uploaded {version.ref} ({len(version.files)} files, {_human_size(version.total_size)})"
        )


@click.group()
def alias() -> None:
    """Set, remove and list aliases (mutable pointers like prod or staging)."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=int)
@click.pass_context
def alias_set(ctx: click.Context, name: str, alias_name: str, version: int) -> None:
    """Point NAME@ALIAS at VERSION."""
    record = _shelf(ctx).set_alias(name, alias_name, version)
    moved = f" (was {record.previous})" if record.previous is not None else ""
    click.echo(f"{safe(name)}@{safe(alias_name)} -> {version}{moved}")


@alias.command("rm")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.pass_context
def alias_rm(ctx: click.Context, name: str, alias_name: str) -> None:
    """Remove NAME@ALIAS."""
    _shelf(ctx).remove_alias(name, alias_name)
    click.echo(f"Removed {safe(name)}@{safe(alias_name)}")


@alias.command("ls")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alias_ls(ctx: click.Context, name: str, as_json: bool) -> None:
    """List the aliases of NAME."""
    aliases = _shelf(ctx).aliases(name)
    if as_json:
        _emit_json(aliases)
        return
    for record in aliases.values():
        click.echo(
            f"@{safe(record.alias)} -> {record.version}  (set {_when(record.set_at)} by {safe(record.set_by)})"
        )


@click.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also remove aliases that point to this version.")
@click.pass_context
def delete(ctx: click.Context, ref: str, force: bool) -> None:
    """Delete version REF (NAME:N). Its number is never reused; run gc to free space."""
    tombstone = _shelf(ctx).delete(ref, force=force)
    click.echo(f"Deleted {safe(tombstone.name)}:{tombstone.version}")
