"""modelshelf-sign: signatures in the OpenSSF model-signing format, kept beside each version.

Hooks only; the signing code (and ``model_signing``, ``cryptography``) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import modelshelf

if TYPE_CHECKING:
    import click
    from modelshelf import ModelVersion, Shelf


@modelshelf.hookimpl
def modelshelf_register_commands(cli: click.Group) -> None:
    from .cli import sign, signatures

    cli.add_command(sign)
    cli.add_command(signatures)


@modelshelf.hookimpl
def modelshelf_check_version(
    shelf: Shelf, version: ModelVersion, requirements: dict[str, Any]
) -> dict[str, str | None] | None:
    if "signed_by" not in requirements:
        return None
    from .verifying import check_signed

    return {"signed_by": check_signed(shelf, version, requirements["signed_by"])}
