"""``modelshelf ui``: serve the web view; ``modelshelf ui build DIR``: write it as a static site.

Failures end the way every modelshelf command ends: one line and exit 1 (the core's command group
reports :class:`~modelshelf.ModelshelfError`), e.g. for a shelf that cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from modelshelf import ModelshelfError


def _open_view(ctx: click.Context, url: str | None) -> Any:
    """Open the shelf (``ui --shelf`` first, else the global ``--shelf``) and prove it readable."""
    import modelshelf
    from modelshelf.terminal import safe

    from .data import ShelfView

    root = ctx.find_root().obj or {}
    url = url or root.get("url")
    options = root.get("options") or {}
    try:
        shelf = modelshelf.open(url, **options)
    except TypeError as exc:  # a storage factory that does not take one of the -o options
        if not options:
            raise
        raise click.UsageError(
            f"the storage plugin for {url or 'the default shelf'} does not accept these -o options ({exc})"
        ) from None
    # A listing proves the shelf can be read (credentials, bucket, permissions) before serving.
    names = shelf.models()
    if not names and shelf.storage.stat(".modelshelf.json") is None:
        # Nothing there at all, not even an empty shelf: most likely a mistyped location.
        raise ModelshelfError(
            f"no shelf at {safe(shelf.url)}: nothing to show (check --shelf or MODELSHELF_URL)"
        )
    return ShelfView(shelf)


@click.group(invoke_without_command=True)
@click.option(
    "--shelf",
    "url",
    metavar="URL",
    help="The shelf to show (default: modelshelf's --shelf, MODELSHELF_URL, ~/.modelshelf).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but 127.0.0.1 shows the shelf to other machines.",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the page in the default web browser."
)
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
@click.pass_context
def ui(
    ctx: click.Context, url: str | None, port: int, host: str, open_browser: bool, verbose: bool
) -> None:
    """A read-only web view of the shelf, on http://127.0.0.1:8765/ by default.

    \b
    modelshelf ui                      serve it (Ctrl-C stops)
    modelshelf ui build DIR            write it as a static site (open DIR/index.html)
    """
    ctx.ensure_object(dict)
    ctx.obj["ui_url"] = url
    if ctx.invoked_subcommand is not None:
        return
    from modelshelf.terminal import safe

    from .server import UIServer

    view = _open_view(ctx, url)
    try:
        server = UIServer(view, host, port, quiet=not verbose)
    except OSError as exc:
        raise ModelshelfError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host"
        ) from None
    with server:
        click.echo(f"Serving {safe(view.shelf.url)} read-only at {server.url} (Ctrl-C stops)")
        if host != "127.0.0.1":
            click.echo(
                f"Warning: listening on {host}: other machines that reach it can read this shelf",
                err=True,
            )
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")


@ui.command("build")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shelf", "url", metavar="URL", help="The shelf to show (as for `modelshelf ui`).")
@click.pass_context
def build(ctx: click.Context, directory: Path, url: str | None) -> None:
    """Write the web view of the shelf as a static site in DIRECTORY (created if needed).

    Open DIRECTORY/index.html from disk, or serve the folder from anywhere (a bucket's static
    hosting). Running it again rewrites only the files whose content changed.
    """
    from modelshelf.terminal import safe

    from .static_site import build_site

    view = _open_view(ctx, url or (ctx.obj or {}).get("ui_url"))
    report = build_site(view, directory)
    for name, error in report.failed:
        click.echo(safe(f"Warning: {name}: not updated: {error}"), err=True)
    click.echo(
        f"{directory}: {report.models} models, {report.versions} versions; "
        f"{report.written} files written, {report.unchanged} unchanged, {report.removed} removed"
    )
    click.echo(f"Open {(directory / 'index.html').resolve().as_uri()}")
