"""Command line for trust (docs/trust.md): ``modelshelf policy``, ``modelshelf convert``, and
what ``info`` and ``gc`` print about scans, attachments and retention."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from .errors import ModelshelfError
from .records import AliasRule, ModelVersion, Policy, RetentionRule
from .terminal import safe

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_DAYS = {"s": 1 / 86400, "m": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0, "": 1.0}


def parse_age_days(text: str, hint: str = "--keep-newer-than") -> float:
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` (a bare number is days) -> days."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise click.BadParameter(f"{text!r} is not an age like 90d, 12h or 2w", param_hint=hint)
    return float(match.group(1)) * _DAYS[match.group(2)]


def retention_rule(
    keep_last: int | None, keep_newer_than: str | None, keep_aliased: bool, models: tuple[str, ...]
) -> RetentionRule | None:
    if keep_last is None and keep_newer_than is None:
        if keep_aliased or models:
            raise click.UsageError(
                "--keep-aliased and --model go with --keep-last or --keep-newer-than"
            )
        return None
    days = None if keep_newer_than is None else parse_age_days(keep_newer_than)
    return RetentionRule(
        keep_last=keep_last, keep_newer_than_days=days, keep_aliased=keep_aliased, models=models
    )


def _size(size: int) -> str:
    from .cli import _human_size

    return _human_size(size)


def echo_retention(report: Any) -> None:
    if not report.retired and not report.spared:
        return
    verb = "Would delete" if report.dry_run else "Deleted"
    later = "" if report.dry_run else " (their files go once the grace period has passed)"
    click.echo(
        f"{verb} {len(report.retired)} versions by retention, {_size(report.retired_bytes)} "
        f"no other version uses{later}:"
    )
    for ref in report.retired:
        click.echo(f"  {safe(ref)}")
    for line in report.spared:
        click.echo(safe(f"kept {line}"), err=True)


def echo_trust_info(shelf: Any, version: ModelVersion) -> None:
    """The scan verdict and the attached records (signatures...) of a version, for ``info``."""
    if version.scan is not None:
        from .scanning import describe

        verdict = (
            "FLAGGED: " + describe(version.scan)
            if version.scan.dangerous
            else "no dangerous imports"
        )
        click.echo(safe(f"  pickle scan: {len(version.scan.scanned)} files, {verdict}"))
    for kind, records in sorted(shelf.attached(version.ref).items()):
        click.echo(safe(f"  {kind}: {len(records)}"))
        for record_id, data in sorted(records.items()):
            click.echo(safe(f"    {record_id[:12]}  {_summary(data)}"))


def _summary(data: bytes) -> str:
    try:
        raw = json.loads(data)
    except ValueError:
        return "(not JSON)"
    parts = [
        str(raw[k])
        for k in ("signer", "signed_by", "signed_at")
        if isinstance(raw, dict) and k in raw
    ]
    return "  ".join(parts)


# --- modelshelf policy ----------------------------------------------------------------------


def _pem_or_path(value: str, base: Path) -> str:
    """A signer in a policy file: PEM text, a fingerprint, ``sigstore:...``, or a path to a PEM file."""
    if value.lstrip().startswith("-----BEGIN") or value.startswith(("sigstore:", "sha256:")):
        return value
    path = (base / value).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise ModelshelfError(
            f"signer {value!r}: cannot read {path}: {exc.strerror or exc}"
        ) from None


def policy_from_file(path: Path) -> tuple[list[AliasRule], RetentionRule | None]:
    """Read a policy file: ``{"aliases": [{"pattern", "signed_by", "min_metrics", "tags"}],
    "retention": {"keep_last", "keep_newer_than", "keep_aliased", "models"}}``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelshelfError(f"cannot read policy file {path}: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - {"aliases", "retention"}:
        raise ModelshelfError(
            f"{path}: a policy file is an object with 'aliases' and/or 'retention'"
        )
    rules = []
    for item in raw.get("aliases", []):
        if (
            not isinstance(item, dict)
            or "pattern" not in item
            or set(item) - {"pattern", "signed_by", "min_metrics", "tags"}
        ):
            raise ModelshelfError(
                f"{path}: each alias rule has 'pattern' and any of 'signed_by', 'min_metrics', 'tags'"
            )
        rules.append(
            AliasRule(
                pattern=str(item["pattern"]),
                signed_by=tuple(
                    _pem_or_path(str(s), path.parent) for s in item.get("signed_by", [])
                ),
                min_metrics={str(k): float(v) for k, v in item.get("min_metrics", {}).items()},
                tags={str(k): str(v) for k, v in item.get("tags", {}).items()},
            )
        )
    retention = None
    if raw.get("retention") is not None:
        keep = raw["retention"]
        if not isinstance(keep, dict) or set(keep) - {
            "keep_last",
            "keep_newer_than",
            "keep_aliased",
            "models",
            "recently_aliased",
        }:
            raise ModelshelfError(
                f"{path}: 'retention' has keep_last, keep_newer_than, keep_aliased, models, recently_aliased"
            )
        retention = RetentionRule(
            keep_last=keep.get("keep_last"),
            keep_newer_than_days=None
            if keep.get("keep_newer_than") is None
            else parse_age_days(str(keep["keep_newer_than"]), "retention"),
            keep_aliased=bool(keep.get("keep_aliased", False)),
            recently_aliased_days=parse_age_days(
                str(keep.get("recently_aliased", "30d")), "retention"
            ),
            models=tuple(keep.get("models", ())),
        )
    return rules, retention


def _echo_policy(record: Policy) -> None:
    click.echo(
        f"policy {record.number}  set {record.created_at:%Y-%m-%d %H:%M} UTC by {safe(record.created_by)}"
    )
    for rule in record.aliases:
        needs = []
        if rule.signed_by:
            needs.append(f"signed by one of {len(rule.signed_by)} signers")
        needs += [f"{k} >= {v:g}" for k, v in sorted(rule.min_metrics.items())]
        needs += [f"tag {k}={v}" for k, v in sorted(rule.tags.items())]
        click.echo(
            safe(f"  protect @{rule.pattern}: {', '.join(needs) or 'nothing (any live version)'}")
        )
    keep = record.retention
    if keep is not None:
        parts = []
        if keep.keep_last is not None:
            parts.append(f"the last {keep.keep_last}")
        if keep.keep_newer_than_days is not None:
            parts.append(f"those newer than {keep.keep_newer_than_days:g} days")
        parts.append(
            "every version ever aliased"
            if keep.keep_aliased
            else f"aliased versions and those aliased in the last {keep.recently_aliased_days:g} days"
        )
        scope = f" of {', '.join(keep.models)}" if keep.models else ""
        click.echo(safe(f"  retention{scope}: gc keeps {', '.join(parts)}"))


@click.group()
def policy() -> None:
    """The shelf's policy: protected aliases and retention (each change is kept in its history)."""


@policy.command("show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def policy_show(ctx: click.Context, as_json: bool) -> None:
    """Show the current policy."""
    from .cli import _emit_json, current_shelf

    record = current_shelf(ctx).policy()
    if as_json:
        _emit_json(record)
    elif record is None:
        click.echo("This shelf has no policy.")
    else:
        _echo_policy(record)


@policy.command("history")
@click.pass_context
def policy_history(ctx: click.Context) -> None:
    """Show every policy the shelf has had, oldest first."""
    from .cli import current_shelf

    for record in current_shelf(ctx).policy_history():
        _echo_policy(record)


@policy.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def policy_set(ctx: click.Context, file: Path) -> None:
    """Replace the policy with the one in FILE (JSON; signers may be PEM file paths)."""
    from .cli import current_shelf

    rules, retention = policy_from_file(file)
    _echo_policy(current_shelf(ctx).set_policy(aliases=rules, retention=retention))


@click.command("convert")
@click.argument("ref")
@click.option(
    "--to",
    "serializer",
    required=True,
    metavar="SERIALIZER",
    help="The serializer to save with (sklearn-skops...).",
)
@click.option(
    "--trust",
    is_flag=True,
    help="Load REF even if its format can run code (you trust its uploader).",
)
@click.option(
    "--ignore-scan",
    is_flag=True,
    help="Load REF even if its pickle scan flagged dangerous imports.",
)
@click.pass_context
def convert_command(
    ctx: click.Context, ref: str, serializer: str, trust: bool, ignore_scan: bool
) -> None:
    """Save REF again in another format (a safe one) as a new version, with lineage to REF."""
    from .cli import current_shelf

    shelf = current_shelf(ctx)
    version = shelf.convert(ref, serializer, trust="ignore-scan" if ignore_scan else trust)
    click.echo(safe(f"Converted {shelf.get(ref).ref} to {version.ref} ({serializer})"))
