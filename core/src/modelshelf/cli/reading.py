"""Commands that read a shelf: ``ls``, ``info``, ``history`` and ``download``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..terminal import safe
from .failures import _cache_location, _writing_to
from .formatting import _emit_json, _human_size, _when
from .opening import _shelf


@click.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--where",
    metavar="EXPR",
    help='Only versions matching EXPR, e.g. "metrics.auc >= 0.9 and '
    "tags.data == '2026-11'\" (fields: metrics.K params.K tags.K metadata.K created_at created_by "
    "framework serializer version aliases; see the user guide).",
)
@click.option(
    "--sort",
    multiple=True,
    metavar="FIELD",
    help="Order by FIELD, descending with a leading - (-metrics.auc); repeatable.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=None, metavar="N", help="At most N versions."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "csv"]),
    default=None,
    help="Output format (--json is --format json).",
)
@click.pass_context
def list_command(
    ctx: click.Context,
    name: str | None,
    as_json: bool,
    where: str | None,
    sort: tuple[str, ...],
    limit: int | None,
    output_format: str | None,
) -> None:
    """List models, or the versions of model NAME (optionally only those matching --where)."""
    from .. import query_cli

    if as_json and output_format not in (None, "json"):
        raise click.UsageError("--json and --format csv/text: choose one")
    output_format = "json" if as_json else output_format or "text"
    if name is None and (where is not None or sort or limit is not None or output_format == "csv"):
        raise click.UsageError(
            "--where, --sort, --limit and --format csv list the versions of one model: give NAME"
        )
    selection, order = query_cli.parse_options(where, sort)
    as_json = output_format == "json"
    shelf = _shelf(ctx)
    if name is None:
        models = shelf.models()
        if as_json:
            click.echo(json.dumps(models, indent=2))
        elif not models:
            click.echo(
                f"No models on {shelf.url} yet. Upload one with `modelshelf upload NAME PATH`."
            )
        for model in [] if as_json else models:
            click.echo(safe(model))
        return
    versions, aliases = query_cli.select(shelf, name, selection, sort, limit)
    if as_json:
        _emit_json({"versions": versions, "aliases": aliases})
        return
    if output_format == "csv":
        query_cli.echo_csv(versions, aliases)
        return
    by_version: dict[int, list[str]] = {}
    for alias in aliases.values():
        if alias.version is not None:
            by_version.setdefault(alias.version, []).append(alias.alias)
    extra_fields = query_cli.shown_fields(order)
    for v in versions:
        labels = " ".join(f"@{safe(a)}" for a in sorted(by_version.get(v.version, [])))
        tags = " ".join(f"{safe(k)}={safe(val)}" for k, val in sorted(v.tags.items()))
        if extra_fields:  # the values sorted by, after the aliases
            labels = f"{labels} {query_cli.sort_values(v, extra_fields, by_version.get(v.version, []))}".strip()
        click.echo(
            f"{v.version:>5}  {_when(v.created_at)}  {_human_size(v.total_size):>10}  "
            f"{safe(v.serializer.name):<18} {safe(v.created_by)}  {labels} {tags}".rstrip()
        )
    if not versions and selection is not None:
        click.echo(f"No version of {safe(name)} matches --where.", err=True)


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The whole manifest as JSON.")
@click.pass_context
def info(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: REF is NAME, NAME:N, NAME:latest or NAME@ALIAS."""
    version = _shelf(ctx).get(ref)
    if as_json:
        _emit_json(version)
        return
    click.echo(
        f"{safe(version.ref)}  created {_when(version.created_at)} by {safe(version.created_by)}"
    )
    s = version.serializer
    click.echo(
        f"  serializer: {safe(s.name)} ({safe(s.format)}, {'safe' if s.safe else 'needs trust'}) "
        f"from {safe(s.distribution)} {safe(s.distribution_version)}"
    )
    if version.framework:
        click.echo(f"  framework: {safe(version.framework.name)} {safe(version.framework.version)}")
    if version.description:
        # The one field laid out over several lines: its newlines are kept, indented.
        description = safe(version.description, newlines=True).replace("\n", "\n    ")
        click.echo(f"  description: {description}")
    for label, values in (
        ("metrics", version.metrics),
        ("params", version.params),
        ("tags", version.tags),
        ("metadata", version.metadata),
    ):
        if values:
            click.echo(
                f"  {label}: "
                + ", ".join(f"{safe(k)}={safe(v)}" for k, v in sorted(values.items()))
            )
    click.echo(f"  files ({len(version.files)}, {_human_size(version.total_size)}):")
    for f in version.files[:50]:
        click.echo(f"    {safe(f.path)}  {_human_size(f.size)}  sha256:{f.sha256[:12]}")
    if len(version.files) > 50:
        click.echo(f"    ... and {len(version.files) - 50} more (use --json)")
    git = version.lineage.git
    if git:
        click.echo(
            f"  git: {safe(git.commit or '?')} on {safe(git.branch or 'detached HEAD')}{' (dirty)' if git.dirty else ''}"
        )
    from ..cards_cli import echo_card_summary
    from ..trust_cli import echo_trust_info

    echo_card_summary(_shelf(ctx), version)
    echo_trust_info(_shelf(ctx), version)


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show who uploaded, promoted and deleted what, and when."""
    events = _shelf(ctx).history(name)
    if as_json:
        _emit_json(events)
        return
    for e in events:
        if e.action == "alias_set":
            what = f"@{safe(e.alias)} -> {e.version}" + (
                f" (was {e.previous})" if e.previous is not None else ""
            )
        elif e.action == "alias_removed":
            what = f"@{safe(e.alias)} removed (was {e.previous})"
        else:
            what = f"version {e.version}"
        click.echo(f"{_when(e.at)}  {safe(e.by):<24} {safe(e.action):<14} {what}")


@click.command()
@click.argument("ref")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--link",
    is_flag=True,
    help="Hardlink read-only files from the cache instead of copying (no extra space; never edit them).",
)
@click.option(
    "--keep-cache",
    is_flag=True,
    help="Also keep a copy in the download cache (written in the same pass), for later loads.",
)
@click.pass_context
def download(ctx: click.Context, ref: str, dest: Path | None, link: bool, keep_cache: bool) -> None:
    """Download version REF into DEST (default: ./NAME-vN).

    Each file is written once, into DEST, and verified; the cache is only read from unless
    --link or --keep-cache asks to fill it.
    """
    shelf = _shelf(ctx)
    version = shelf.get(ref)
    target = dest or Path(f"{version.name.replace('/', '-')}-v{version.version}")
    if link:
        # Fetched first on its own, so that a failed write is blamed on the right place.
        with _writing_to(_cache_location(shelf)):
            shelf.fetch(version)
    with _writing_to(f"the download destination {target}"):
        shelf.download(version.ref, target, link=link, keep_cache=keep_cache)
    click.echo(f"Downloaded {safe(version.ref)} to {safe(target)}")
