"""Keeping a shelf and the local cache healthy: ``gc``, ``verify`` and ``cache ls|prune|verify``."""

from __future__ import annotations

import datetime as dt
import json
import os

import click

from ..terminal import safe
from .failures import _writing_to
from .formatting import _emit_json, _human_size, _when_timestamp
from .opening import _shelf
from .option_values import _grace_seconds, _parse_size


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--grace",
    default=None,
    metavar="SECONDS",
    help="Keep unreferenced blobs younger than this (default 86400, or MODELSHELF_GC_GRACE).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Retention: keep the N newest versions of each model, delete the rest (see also the shelf policy).",
)
@click.option(
    "--keep-newer-than",
    default=None,
    metavar="AGE",
    help="Retention: keep versions younger than AGE (90d, 12h, 2w).",
)
@click.option(
    "--keep-aliased",
    is_flag=True,
    help="Retention: keep every version that was ever aliased "
    "(aliased versions, and those aliased recently, are always kept).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="PATTERN",
    help="Retention applies to these models only (wildcards).",
)
@click.pass_context
def gc(
    ctx: click.Context,
    dry_run: bool,
    grace: str | None,
    keep_last: int | None,
    keep_newer_than: str | None,
    keep_aliased: bool,
    models: tuple[str, ...],
) -> None:
    """Remove stored files that no live version references; with --keep-* (or a retention policy),
    first delete the versions retention does not keep."""
    configured = os.environ.get("MODELSHELF_GC_GRACE")
    if grace is not None:
        seconds: float | None = _grace_seconds(grace, "--grace")
    elif configured:
        seconds = _grace_seconds(configured, "MODELSHELF_GC_GRACE")
    else:
        seconds = None
    from ..trust_cli import echo_retention, retention_rule

    keep = retention_rule(keep_last, keep_newer_than, keep_aliased, models)
    report = _shelf(ctx).gc(
        dry_run=dry_run, grace=None if seconds is None else dt.timedelta(seconds=seconds), keep=keep
    )
    echo_retention(report)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {len(report.removed)} blobs ({_human_size(report.removed_bytes)}); "
        f"kept {report.referenced} referenced, {report.in_flight} of uploads in progress and "
        f"{report.kept_recent} too recent to remove"
    )
    for problem in report.unreadable:
        click.echo(safe(f"kept every file mentioned by unreadable manifest {problem}"), err=True)
    if report.stopped_early:
        click.echo(
            "gc stopped early: it could not keep its run record fresh; run it again", err=True
        )
        ctx.exit(1)


@click.command()
@click.argument("ref", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--repair",
    is_flag=True,
    help="Remove stored files whose bytes do not match their sha256, so that "
    "uploading or copying the genuine file stores it again.",
)
@click.option(
    "--signatures",
    is_flag=True,
    help="Also check REF carries a valid signature covering exactly its files "
    "(needs a signature plugin, modelshelf-sign).",
)
@click.option(
    "--signer",
    "signers",
    multiple=True,
    metavar="KEY",
    help="With --signatures: an allowed signer (public key or certificate PEM file, or fingerprint); repeatable.",
)
@click.pass_context
def verify(
    ctx: click.Context,
    ref: str | None,
    as_json: bool,
    repair: bool,
    signatures: bool,
    signers: tuple[str, ...],
) -> None:
    """Re-hash stored files of REF (or of the whole shelf); exit 1 on any defect."""
    if (signatures or signers) and ref is None:
        raise click.UsageError("--signatures checks one version: give REF")
    problems = _shelf(ctx).verify(ref, repair=repair)
    if (signatures or signers) and ref is not None:
        problems += _shelf(ctx).verify_signatures(ref, list(signers) or True)
    if as_json:
        _emit_json(problems)
    else:
        for p in problems:
            click.echo(safe(f"{p.ref}{'/' + p.path if p.path else ''}: {p.what}"))
        if not problems:
            signed = (
                " and a valid signature covers exactly these files" if signatures or signers else ""
            )
            click.echo(f"OK: every stored file matches its sha256{signed}")
    if problems:
        ctx.exit(1)


@click.group()
def cache() -> None:
    """Inspect and prune the local download cache (MODELSHELF_CACHE)."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True)
def cache_ls(as_json: bool) -> None:
    """List cached files, most recently used first."""
    import attrs

    from ..cache import Cache

    store = Cache()
    with _writing_to(f"the download cache {store.root} (MODELSHELF_CACHE)"):
        blobs = sorted(store.blobs(), key=lambda b: -b.last_used)
    if as_json:
        click.echo(
            json.dumps(
                {"path": str(store.root), "blobs": [attrs.asdict(b) for b in blobs]}, indent=2
            )
        )
        return
    click.echo(f"{store.root}: {len(blobs)} files, {_human_size(sum(b.size for b in blobs))}")
    for b in blobs:
        used = _when_timestamp(b.last_used)
        click.echo(f"  sha256:{b.sha256[:16]}  {_human_size(b.size):>10}  last used {used}")


@cache.command("prune")
@click.option(
    "--max-size",
    required=True,
    metavar="SIZE",
    help="Evict least recently used files until the cache fits, e.g. 10GB.",
)
@click.option("--dry-run", is_flag=True)
def cache_prune(max_size: str, dry_run: bool) -> None:
    """Shrink the cache to at most SIZE."""
    from ..cache import Cache

    size = _parse_size(max_size)
    store = Cache()
    with _writing_to(f"the download cache {store.root} (MODELSHELF_CACHE)"):
        evicted = store.prune(size, dry_run=dry_run)
    verb = "Would evict" if dry_run else "Evicted"
    click.echo(f"{verb} {len(evicted)} files ({_human_size(sum(b.size for b in evicted))})")


@cache.command("verify")
@click.pass_context
def cache_verify(ctx: click.Context) -> None:
    """Re-hash every cached file; remove those that do not match their sha256 (exit 1 if any)."""
    from ..cache import Cache

    store = Cache()
    bad = store.verify()
    for b in bad:
        click.echo(f"sha256:{b.sha256}: {b.what}")
    if bad:
        click.echo(
            f"{len(bad)} bad files in {store.root}; removed ones are downloaded again on next use"
        )
        ctx.exit(1)
    click.echo(f"OK: every file in {store.root} matches its sha256")
