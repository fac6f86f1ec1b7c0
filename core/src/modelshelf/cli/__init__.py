"""The ``modelshelf`` command line (also ``python -m modelshelf``).

Exit codes: 0 success, 1 an error explained in one line on stderr (never a traceback), 2 bad
usage (one line too), 130 interrupted (Ctrl-C). An unexpected exception is reported as one
"internal error" line; ``MODELSHELF_DEBUG=1`` shows its traceback.

Everything shown on the terminal that came from a shelf (names, descriptions, tags, metadata,
history) goes through :func:`modelshelf.terminal.safe`, so stored escape sequences stay inert.

This module holds the root group, ``main`` and the loading of plugin commands; the commands
themselves live beside it, by concern. Names with a leading underscore are shared inside this
package only; ``current_shelf`` is for plugin commands.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from ..cards_cli import card_command as _card_command
from ..errors import ModelshelfError
from ..template import plugin as _plugin_template
from ..trust_cli import convert_command as _convert_command
from ..trust_cli import policy as _policy_group
from .copy_export_import import copy, export_command, import_command
from .failures import _fail, _Group, _internal_error, _one_line
from .formatting import _emit_json as _emit_json
from .formatting import _human_size as _human_size
from .maintenance import cache, gc, verify
from .opening import current_shelf as current_shelf
from .option_values import MAX_GC_GRACE_SECONDS as MAX_GC_GRACE_SECONDS
from .option_values import _storage_options
from .plugins_command import plugins
from .reading import download, history, info, list_command
from .writing import alias, delete, upload


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--shelf",
    "url",
    envvar="MODELSHELF_URL",
    metavar="URL",
    help="Shelf location: a path, file://, s3://, az://, gs://... [env MODELSHELF_URL; default ~/.modelshelf]",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option for the storage plugin, e.g. -o region=eu-west-1 -o anonymous=true (repeatable).",
)
@click.version_option(__version__, prog_name="modelshelf")
@click.pass_context
def cli(ctx: click.Context, url: str | None, options: tuple[str, ...]) -> None:
    """A serverless model registry on a directory or a cloud bucket."""
    ctx.ensure_object(dict)
    ctx.obj["url"] = url
    ctx.obj["options"] = _storage_options(options)
    if ctx.invoked_subcommand != "plugins":
        for message in _load_warnings:
            click.echo(f"Warning: {_one_line(message)}", err=True)
    _load_warnings.clear()


for _command in (
    plugins,
    list_command,
    info,
    upload,
    download,
    alias,
    history,
    delete,
    gc,
    verify,
    copy,
    export_command,
    import_command,
    cache,
    # Defined in modules of their own outside this package: `plugin new` (stdlib and click
    # only), model cards, and the trust commands policy and convert.
    _plugin_template,
    _card_command,
    _policy_group,
    _convert_command,
):
    cli.add_command(_command)


def _add_plugin_commands() -> None:
    from ..plugins import get_registry

    registry = get_registry()
    registry.load()
    registry.broadcast("modelshelf_register_commands", cli=cli)


def _plugin_warnings_as_lines() -> None:
    """Show a :class:`~modelshelf.plugins.PluginWarning` (a plugin failed, conflicts...) as one
    ``Warning:`` line on stderr, not as Python's two lines with a source location."""
    import warnings

    from ..plugins import PluginWarning

    shown = warnings.showwarning

    def show(
        message: Any,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: Any = None,
    ) -> None:
        if issubclass(category, PluginWarning):
            click.echo(f"Warning: {_one_line(message)}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


#: Plugin warnings raised while loading plugins, shown once the command is known (not for
#: ``modelshelf plugins``, whose listing says the same).
_load_warnings: list[str] = []


def main(argv: list[str] | None = None) -> None:
    import warnings

    from ..plugins import PluginWarning

    try:
        _plugin_warnings_as_lines()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _add_plugin_commands()
        for w in caught:
            if issubclass(w.category, PluginWarning):
                _load_warnings.append(str(w.message))
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    except ModelshelfError as exc:  # pragma: no cover - a broken plugin must not stop the CLI
        click.echo(f"Warning: {_one_line(exc)}", err=True)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # pragma: no cover - the last resort, as in _Group.main
        _internal_error(exc)
    cli.main(args=argv, prog_name="modelshelf")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
