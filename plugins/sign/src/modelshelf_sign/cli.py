"""``modelshelf sign REF --key KEY`` and ``modelshelf signatures REF``."""

from __future__ import annotations

from pathlib import Path

import click
from modelshelf.cli import current_shelf
from modelshelf.terminal import safe


@click.command()
@click.argument("ref")
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM elliptic-curve private key.",
)
@click.option(
    "--password",
    envvar="MODELSHELF_SIGN_PASSWORD",
    default=None,
    help="The key's password (or MODELSHELF_SIGN_PASSWORD).",
)
@click.option(
    "--certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The key's signing certificate (PEM).",
)
@click.option(
    "--chain",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Intermediate certificates (repeatable).",
)
@click.option(
    "--sigstore",
    is_flag=True,
    help="Sign keyless through Sigstore (needs network and an OIDC identity).",
)
@click.pass_context
def sign(
    ctx: click.Context,
    ref: str,
    key: Path | None,
    password: str | None,
    certificate: Path | None,
    chain: tuple[Path, ...],
    sigstore: bool,
) -> None:
    """Sign version REF (OpenSSF model-signing format); the signature is stored beside it."""
    from .signing import sign as sign_version

    shelf = current_shelf(ctx)
    record = sign_version(
        shelf,
        ref,
        key=key,
        password=password,
        certificate=certificate,
        chain=chain,
        sigstore=sigstore,
    )
    click.echo(safe(f"Signed {record.signed_ref} ({record.method}) by {record.signer}"))


@click.command()
@click.argument("ref")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the (first) signature's Sigstore bundle to this file, for `model_signing verify`.",
)
@click.pass_context
def signatures(ctx: click.Context, ref: str, write_to: Path | None) -> None:
    """List the signatures of version REF (unverified: use `modelshelf verify REF --signatures`)."""
    from .verifying import signatures as list_signatures

    shelf = current_shelf(ctx)
    version = shelf.get(ref)
    found = list_signatures(shelf, version)
    if not found:
        click.echo(safe(f"{version.ref} is not signed"))
        ctx.exit(1)
    for record_id, record in found:
        if isinstance(record, str):
            click.echo(safe(f"{record_id[:12]}  unreadable: {record}"))
        else:
            click.echo(
                safe(
                    f"{record_id[:12]}  {record.method}  {record.signer}  signed {record.signed_at:%Y-%m-%d %H:%M} UTC by {record.signed_by}"
                )
            )
    if write_to is not None:
        first = next(r for _, r in found if not isinstance(r, str))
        write_to.write_text(first.bundle, encoding="utf-8")
