"""Moving versions between shelves: ``copy``, and ``export``/``import`` of bundle files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..terminal import safe
from .failures import _cache_location, _writing_to
from .formatting import _emit_json, _human_size
from .opening import _open_with_options, _shelf
from .option_values import _storage_options


def _print_transfer(report: Any, as_json: bool, target: str) -> None:
    if as_json:
        _emit_json(report)
        return
    for source, copied in report.copied.items():
        click.echo(safe(f"{source} -> {copied}"))
    for source, present in report.present.items():
        click.echo(safe(f"{source} already on {target} as {present}"))
    for alias, version in report.aliases.items():
        click.echo(safe(f"{alias} -> {version}"))
    click.echo(
        f"{len(report.copied)} copied, {len(report.present)} already present, "
        f"{_human_size(report.bytes_sent)} sent"
    )


@click.command()
@click.argument("ref", required=False)
@click.option("--to", "target_url", required=True, metavar="URL", help="The shelf to copy to.")
@click.option("--all", "all_models", is_flag=True, help="Copy every version of every model.")
@click.option(
    "--aliases", is_flag=True, help="Also set the source's aliases on the copied versions."
)
@click.option(
    "--to-option",
    "target_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A storage option for the target shelf.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def copy(
    ctx: click.Context,
    ref: str | None,
    target_url: str,
    all_models: bool,
    aliases: bool,
    target_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy REF to another shelf: NAME (every version), NAME:N, NAME@ALIAS, or --all.

    Only files the target lacks are sent; every file is verified; copying again sends nothing.
    """
    from ..copying import copy as copy_versions
    from ..shelf import open as open_shelf

    target = _open_with_options(
        open_shelf, target_url, _storage_options(target_options), "--to-option"
    )
    source = _shelf(ctx)
    with _writing_to(_cache_location(source)):  # blobs travel through the local cache
        report = copy_versions(source, target, ref, all_models=all_models, aliases=aliases)
    _print_transfer(report, as_json, target_url)


@click.command("export")
@click.argument("arguments", nargs=-1, required=True, metavar="[REF] FILE")
@click.option(
    "--all",
    "all_models",
    is_flag=True,
    help="Export every version of every model (then give only FILE).",
)
@click.pass_context
def export_command(ctx: click.Context, arguments: tuple[str, ...], all_models: bool) -> None:
    """Write REF (as for copy) with its files into one bundle FILE (.tar, or .tar.gz)."""
    from ..copying import export_bundle

    if len(arguments) > 2 or (len(arguments) == 1 and not all_models):
        raise click.UsageError("give REF and FILE, or --all and FILE")
    ref, file = (None, arguments[0]) if len(arguments) == 1 else arguments
    shelf = _shelf(ctx)
    # Writing the bundle itself fails with an error naming it; what is left is the cache.
    with _writing_to(_cache_location(shelf)):
        versions = export_bundle(shelf, ref, Path(file), all_models=all_models)
    click.echo(f"Exported {len(versions)} versions to {safe(file)}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-aliases", is_flag=True, help="Do not set the bundle's aliases.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def import_command(ctx: click.Context, file: Path, no_aliases: bool, as_json: bool) -> None:
    """Import a bundle FILE made by `modelshelf export`, verifying every file."""
    from ..copying import import_bundle

    shelf = _shelf(ctx)
    with _writing_to(_cache_location(shelf)):  # blobs are verified into the cache first
        report = import_bundle(shelf, file, aliases=not no_aliases)
    _print_transfer(report, as_json, shelf.url)
