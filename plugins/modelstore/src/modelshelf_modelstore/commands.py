"""``modelshelf import-modelstore``: the command this plugin adds to the ``modelshelf`` group."""

from __future__ import annotations

import json

import click


def add_commands(cli: click.Group) -> None:
    @cli.command("import-modelstore")
    @click.option(
        "--from",
        "source",
        required=True,
        metavar="LOCATION",
        help="The modelstore root: the root_directory of from_file_system, or s3://bucket/root_prefix.",
    )
    @click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def import_modelstore_command(
        ctx: click.Context, source: str, dry_run: bool, as_json: bool
    ) -> None:
        """Import a modelstore registry: domains -> models, models -> versions, states -> aliases.

        Safe to re-run: models imported before are skipped. Pickle-based files are imported as
        files; loading them needs trust=True.
        """
        from modelshelf.cli import current_shelf
        from modelshelf.terminal import safe

        from .importer import import_modelstore

        report = import_modelstore(source, current_shelf(ctx), dry_run=dry_run)
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
            return
        for line in report.lines():
            # Domain names, model ids and reasons come from the registry: untrusted text.
            click.echo(safe(line))


__all__ = ["add_commands"]
