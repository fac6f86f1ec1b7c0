"""The ``modelshelf`` command line (also ``python -m modelshelf``).

Exit codes: 0 success, 1 a user error (one line on stderr, no traceback), 2 bad usage.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ModelshelfError

F = TypeVar("F", bound=Callable[..., Any])


def _shelf(ctx: click.Context) -> Any:
    from .shelf import open as open_shelf

    obj = ctx.find_root().obj
    if obj.get("shelf") is None:
        obj["shelf"] = open_shelf(obj.get("url"), **obj.get("options", {}))
    return obj["shelf"]


def _storage_options(values: Iterable[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` pairs; values that read as JSON (numbers, true/false) are converted."""
    options: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _emit_json(value: Any) -> None:
    from .convert import converter

    click.echo(json.dumps(converter.unstructure(value), indent=2, sort_keys=True, default=str))


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _parse_size(text: str) -> int:
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
    stripped = text.strip().lower().replace("ib", "b")
    number = stripped.rstrip("kmgtb")
    unit = stripped[len(number):]
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size like 500MB or 10GB") from None
    if unit not in units or value < 0:
        raise click.BadParameter(f"{text!r} is not a size like 500MB or 10GB")
    return int(value * units[unit])


def _pairs(values: Iterable[str], what: str, number: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        if number:
            try:
                result[key] = float(value)
            except ValueError:
                raise click.BadParameter(f"{key}={value!r}: metric values must be numbers", param_hint=what) from None
        else:
            result[key] = value
    return result


def _when(value: dt.datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


class _Group(click.Group):
    """Turns modelshelf errors into one-line messages and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelshelfError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--shelf", "url", envvar="MODELSHELF_URL", metavar="URL",
              help="Shelf location: a path, file://, s3://, az://, gs://... [env MODELSHELF_URL; default ~/.modelshelf]")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="An option for the storage plugin, e.g. -o region=eu-west-1 -o anonymous=true (repeatable).")
@click.version_option(__version__, prog_name="modelshelf")
@click.pass_context
def cli(ctx: click.Context, url: str | None, options: tuple[str, ...]) -> None:
    """A serverless model registry on a directory or a cloud bucket."""
    ctx.ensure_object(dict)
    ctx.obj["url"] = url
    ctx.obj["options"] = _storage_options(options)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins of modelshelf itself.")
def plugins(as_json: bool, show_all: bool) -> None:
    """List plugins: what each provides, and whether it loaded."""
    import attrs

    from .plugins import CORE_DISTRIBUTION, get_registry

    infos = [i for i in get_registry().infos() if show_all or i.distribution != CORE_DISTRIBUTION]
    if as_json:
        click.echo(json.dumps([attrs.asdict(i) for i in infos], indent=2))
        return
    if not infos:
        click.echo("No plugins installed (add --all to see the built-ins). Install one, e.g. `pip install modelshelf-s3`.")
        return
    for info in infos:
        click.echo(f"{info.name}  ({info.distribution} {info.version})  {info.status}")
        if info.error:
            click.echo(f"    error: {info.error}")
        if info.schemes:
            click.echo(f"    storage: {', '.join(s + '://' for s in info.schemes)}")
        for s in info.serializers:
            claims = ", ".join(s["claims"]) or "opt-in (--serializer " + s["name"] + ")"
            safety = "safe" if s["safe"] else "UNSAFE: needs trust to load"
            click.echo(f"    serializer {s['name']} [{s['format']}, {safety}]: {claims}")
        if info.hooks and info.status == "loaded":
            click.echo(f"    hooks: {', '.join(info.hooks)}")


@cli.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List models, or the versions of model NAME."""
    shelf = _shelf(ctx)
    if name is None:
        models = shelf.models()
        if as_json:
            click.echo(json.dumps(models, indent=2))
        elif not models:
            click.echo(f"No models on {shelf.url} yet. Upload one with `modelshelf upload NAME PATH`.")
        for model in [] if as_json else models:
            click.echo(model)
        return
    versions = shelf.versions(name)
    aliases = shelf.aliases(name)
    if as_json:
        _emit_json({"versions": versions, "aliases": aliases})
        return
    by_version: dict[int, list[str]] = {}
    for alias in aliases.values():
        by_version.setdefault(alias.version, []).append(alias.alias)
    for v in versions:
        labels = " ".join(f"@{a}" for a in sorted(by_version.get(v.version, [])))
        tags = " ".join(f"{k}={val}" for k, val in sorted(v.tags.items()))
        click.echo(
            f"{v.version:>5}  {_when(v.created_at)}  {_human_size(v.total_size):>10}  "
            f"{v.serializer.name:<18} {v.created_by}  {labels} {tags}".rstrip()
        )


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The whole manifest as JSON.")
@click.pass_context
def info(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: REF is NAME, NAME:N, NAME:latest or NAME@ALIAS."""
    version = _shelf(ctx).get(ref)
    if as_json:
        _emit_json(version)
        return
    click.echo(f"{version.ref}  created {_when(version.created_at)} by {version.created_by}")
    s = version.serializer
    click.echo(f"  serializer: {s.name} ({s.format}, {'safe' if s.safe else 'needs trust'}) from {s.distribution} {s.distribution_version}")
    if version.framework:
        click.echo(f"  framework: {version.framework.name} {version.framework.version}")
    if version.description:
        click.echo(f"  description: {version.description}")
    for label, values in (("metrics", version.metrics), ("params", version.params), ("tags", version.tags), ("metadata", version.metadata)):
        if values:
            click.echo(f"  {label}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
    click.echo(f"  files ({len(version.files)}, {_human_size(version.total_size)}):")
    for f in version.files[:50]:
        click.echo(f"    {f.path}  {_human_size(f.size)}  sha256:{f.sha256[:12]}")
    if len(version.files) > 50:
        click.echo(f"    ... and {len(version.files) - 50} more (use --json)")
    git = version.lineage.git
    if git:
        click.echo(f"  git: {git.commit or '?'} on {git.branch or 'detached HEAD'}{' (dirty)' if git.dirty else ''}")


@cli.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="User metadata (repeatable).")
@click.option("--metric", multiple=True, metavar="KEY=NUMBER", help="A metric (repeatable).")
@click.option("--param", multiple=True, metavar="KEY=VALUE", help="A training parameter (repeatable).")
@click.option("--tag", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--description", default="", help="Free text describing this version.")
@click.option("--extra", multiple=True, type=click.Path(exists=True, path_type=Path), help="An extra file stored under extra/ (repeatable).")
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
@click.pass_context
def upload(ctx: click.Context, name: str, paths: tuple[Path, ...], meta: tuple[str, ...], metric: tuple[str, ...],
           param: tuple[str, ...], tag: tuple[str, ...], description: str, extra: tuple[Path, ...],
           aliases: tuple[str, ...], as_json: bool) -> None:
    """Upload files or directories in PATHS as a new version of model NAME."""
    shelf = _shelf(ctx)
    version = shelf.upload(
        name, list(paths) if len(paths) > 1 else paths[0],
        metadata=_pairs(meta, "--meta"), metrics=_pairs(metric, "--metric", number=True),
        params=_pairs(param, "--param"), tags=_pairs(tag, "--tag"), description=description,
        extra_files=list(extra) or None,
    )
    for alias in aliases:
        shelf.set_alias(name, alias, version.version)
    if as_json:
        _emit_json(version)
    else:
        click.echo(f"Uploaded {version.ref} ({len(version.files)} files, {_human_size(version.total_size)})")


@cli.command()
@click.argument("ref")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option("--link", is_flag=True, help="Hardlink read-only files from the cache instead of copying (no extra space; never edit them).")
@click.pass_context
def download(ctx: click.Context, ref: str, dest: Path | None, link: bool) -> None:
    """Download version REF into DEST (default: ./NAME-vN)."""
    shelf = _shelf(ctx)
    version = shelf.get(ref)
    target = dest or Path(f"{version.name.replace('/', '-')}-v{version.version}")
    shelf.download(version.ref, target, link=link)
    click.echo(f"Downloaded {version.ref} to {target}")


@cli.group()
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
    click.echo(f"{name}@{alias_name} -> {version}{moved}")


@alias.command("rm")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.pass_context
def alias_rm(ctx: click.Context, name: str, alias_name: str) -> None:
    """Remove NAME@ALIAS."""
    _shelf(ctx).remove_alias(name, alias_name)
    click.echo(f"Removed {name}@{alias_name}")


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
        click.echo(f"@{record.alias} -> {record.version}  (set {_when(record.set_at)} by {record.set_by})")


@cli.command()
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
            what = f"@{e.alias} -> {e.version}" + (f" (was {e.previous})" if e.previous is not None else "")
        elif e.action == "alias_removed":
            what = f"@{e.alias} removed (was {e.previous})"
        else:
            what = f"version {e.version}"
        click.echo(f"{_when(e.at)}  {e.by:<24} {e.action:<14} {what}")


@cli.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also remove aliases that point to this version.")
@click.pass_context
def delete(ctx: click.Context, ref: str, force: bool) -> None:
    """Delete version REF (NAME:N). Its number is never reused; run gc to free space."""
    tombstone = _shelf(ctx).delete(ref, force=force)
    click.echo(f"Deleted {tombstone.name}:{tombstone.version}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--grace", type=float, default=None, metavar="SECONDS",
              help="Keep unreferenced blobs younger than this (default 86400, or MODELSHELF_GC_GRACE).")
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, grace: float | None) -> None:
    """Remove stored files that no live version references."""
    report = _shelf(ctx).gc(dry_run=dry_run, grace=None if grace is None else dt.timedelta(seconds=grace))
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {len(report.removed)} blobs ({_human_size(report.removed_bytes)}); "
               f"kept {report.referenced} referenced and {report.kept_recent} too recent to remove")


@cli.command()
@click.argument("ref", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify(ctx: click.Context, ref: str | None, as_json: bool) -> None:
    """Re-hash stored files of REF (or of the whole shelf); exit 1 on any defect."""
    problems = _shelf(ctx).verify(ref)
    if as_json:
        _emit_json(problems)
    else:
        for p in problems:
            click.echo(f"{p.ref}{'/' + p.path if p.path else ''}: {p.what}")
        if not problems:
            click.echo("OK: every stored file matches its sha256")
    if problems:
        ctx.exit(1)


def _print_transfer(report: Any, as_json: bool, target: str) -> None:
    if as_json:
        _emit_json(report)
        return
    for source, copied in report.copied.items():
        click.echo(f"{source} -> {copied}")
    for source, present in report.present.items():
        click.echo(f"{source} already on {target} as {present}")
    for alias, version in report.aliases.items():
        click.echo(f"{alias} -> {version}")
    click.echo(f"{len(report.copied)} copied, {len(report.present)} already present, "
               f"{_human_size(report.bytes_sent)} sent")


@cli.command()
@click.argument("ref", required=False)
@click.option("--to", "target_url", required=True, metavar="URL", help="The shelf to copy to.")
@click.option("--all", "all_models", is_flag=True, help="Copy every version of every model.")
@click.option("--aliases", is_flag=True, help="Also set the source's aliases on the copied versions.")
@click.option("--to-option", "target_options", multiple=True, metavar="KEY=VALUE", help="A storage option for the target shelf.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def copy(ctx: click.Context, ref: str | None, target_url: str, all_models: bool, aliases: bool,
         target_options: tuple[str, ...], as_json: bool) -> None:
    """Copy REF to another shelf: NAME (every version), NAME:N, NAME@ALIAS, or --all.

    Only files the target lacks are sent; every file is verified; copying again sends nothing.
    """
    from .copying import copy as copy_versions
    from .shelf import open as open_shelf

    target = open_shelf(target_url, **_storage_options(target_options))
    report = copy_versions(_shelf(ctx), target, ref, all_models=all_models, aliases=aliases)
    _print_transfer(report, as_json, target_url)


@cli.command("export")
@click.argument("arguments", nargs=-1, required=True, metavar="[REF] FILE")
@click.option("--all", "all_models", is_flag=True, help="Export every version of every model (then give only FILE).")
@click.pass_context
def export_command(ctx: click.Context, arguments: tuple[str, ...], all_models: bool) -> None:
    """Write REF (as for copy) with its files into one bundle FILE (.tar, or .tar.gz)."""
    from .copying import export_bundle

    if len(arguments) > 2 or (len(arguments) == 1 and not all_models):
        raise click.UsageError("give REF and FILE, or --all and FILE")
    ref, file = (None, arguments[0]) if len(arguments) == 1 else arguments
    versions = export_bundle(_shelf(ctx), ref, Path(file), all_models=all_models)
    click.echo(f"Exported {len(versions)} versions to {file}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-aliases", is_flag=True, help="Do not set the bundle's aliases.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def import_command(ctx: click.Context, file: Path, no_aliases: bool, as_json: bool) -> None:
    """Import a bundle FILE made by `modelshelf export`, verifying every file."""
    from .copying import import_bundle

    shelf = _shelf(ctx)
    report = import_bundle(shelf, file, aliases=not no_aliases)
    _print_transfer(report, as_json, shelf.url)


@cli.command("import-modelstore")
@click.option("--from", "source", required=True, metavar="LOCATION",
              help="The modelstore root: the root_directory of from_file_system, or s3://bucket/root_prefix.")
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def import_modelstore_command(ctx: click.Context, source: str, dry_run: bool, as_json: bool) -> None:
    """Import a modelstore registry: domains -> models, models -> versions, states -> aliases.

    Safe to re-run: models imported before are skipped. Pickle-based files are imported as
    files; loading them needs trust=True.
    """
    from .modelstore_import import import_modelstore

    report = import_modelstore(source, _shelf(ctx), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    for line in report.lines():
        click.echo(line)


@cli.group()
def cache() -> None:
    """Inspect and prune the local download cache (MODELSHELF_CACHE)."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True)
def cache_ls(as_json: bool) -> None:
    """List cached files, most recently used first."""
    import attrs

    from .cache import Cache

    store = Cache()
    blobs = sorted(store.blobs(), key=lambda b: -b.last_used)
    if as_json:
        click.echo(json.dumps({"path": str(store.root), "blobs": [attrs.asdict(b) for b in blobs]}, indent=2))
        return
    click.echo(f"{store.root}: {len(blobs)} files, {_human_size(sum(b.size for b in blobs))}")
    for b in blobs:
        used = dt.datetime.fromtimestamp(b.last_used).strftime("%Y-%m-%d %H:%M")
        click.echo(f"  sha256:{b.sha256[:16]}  {_human_size(b.size):>10}  last used {used}")


@cache.command("prune")
@click.option("--max-size", required=True, metavar="SIZE", help="Evict least recently used files until the cache fits, e.g. 10GB.")
@click.option("--dry-run", is_flag=True)
def cache_prune(max_size: str, dry_run: bool) -> None:
    """Shrink the cache to at most SIZE."""
    from .cache import Cache

    evicted = Cache().prune(_parse_size(max_size), dry_run=dry_run)
    verb = "Would evict" if dry_run else "Evicted"
    click.echo(f"{verb} {len(evicted)} files ({_human_size(sum(b.size for b in evicted))})")


def _add_plugin_commands() -> None:
    from .plugins import get_registry

    registry = get_registry()
    registry.load()
    registry.broadcast("modelshelf_register_commands", cli=cli)


def main(argv: list[str] | None = None) -> None:
    try:
        _add_plugin_commands()
    except ModelshelfError as exc:  # pragma: no cover - a broken plugin must not stop the CLI
        click.echo(f"Warning: {exc}", err=True)
    cli.main(args=argv, prog_name="modelshelf")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
