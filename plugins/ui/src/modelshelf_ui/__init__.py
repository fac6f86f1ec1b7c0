"""modelshelf-ui: a read-only web view of a shelf.

``modelshelf ui`` serves it on 127.0.0.1; ``modelshelf ui build DIR`` writes the same pages as a
static site. This module holds only the hook implementation: the command, the server and the
pages are imported when the command runs, so ``modelshelf plugins`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelshelf import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def modelshelf_register_commands(cli: click.Group) -> None:
    from .commands import ui

    cli.add_command(ui)
