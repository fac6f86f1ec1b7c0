"""``modelshelf plugins``: what each installed plugin provides, and whether it loaded."""

from __future__ import annotations

import json

import click

from ..terminal import safe
from .failures import _one_line


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--all", "show_all", is_flag=True, help="Include the built-in plugins of modelshelf itself."
)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 if any plugin failed, is blocked, conflicts with another or has problems (for a plugin's CI).",
)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, show_all: bool, check: bool) -> None:
    """List plugins: what each provides, and whether it loaded."""
    import warnings

    import attrs

    from ..plugins import CORE_DISTRIBUTION, PluginWarning, get_registry

    registry = get_registry()
    with warnings.catch_warnings():
        # This listing shows every failure and conflict itself; a warning would say it twice.
        warnings.simplefilter("ignore", PluginWarning)
        infos = [i for i in registry.infos() if show_all or i.distribution != CORE_DISTRIBUTION]
        failures = registry.check() if check else []
    if as_json:
        click.echo(json.dumps([attrs.asdict(i) for i in infos], indent=2))
    elif not infos:
        click.echo(
            "No plugins installed (add --all to see the built-ins). Install one, e.g. `pip install modelshelf-s3`."
        )
    for info in [] if as_json else infos:
        # Plugin metadata and errors are third-party text: every line goes through safe().
        status = (
            info.status
            if info.status != "loaded" or not (info.problems or info.conflicts)
            else "loaded, with problems"
        )
        click.echo(safe(f"{info.name}  ({info.distribution} {info.version})  {status}"))
        if info.error:
            # The whole error: pluggy's validation message names the argument at fault on line 3.
            lines = [line for line in info.error.splitlines() if line.strip()]
            click.echo(f"    error: {safe(lines[0])}")
            for line in lines[1:]:
                click.echo(f"      {safe(line.rstrip())}")
        if info.schemes:
            click.echo(safe(f"    storage: {', '.join(s + '://' for s in info.schemes)}"))
        for s in info.serializers:
            claims = ", ".join(s["claims"]) or f"opt-in (upload(..., serializer={s['name']!r}))"
            safety = "safe" if s["safe"] else "UNSAFE: needs trust to load"
            click.echo(safe(f"    serializer {s['name']} [{s['format']}, {safety}]: {claims}"))
            if s["claims"] and not s["safe"] and s.get("unsafe_default_reason"):
                click.echo(safe(f"      unsafe by default because: {s['unsafe_default_reason']}"))
        for conflict in info.conflicts:
            click.echo(f"    CONFLICT: {_one_line(conflict.message())}")
        for problem in info.problems:
            click.echo(f"    problem: {_one_line(problem)}")
        if info.hooks and info.status == "loaded":
            click.echo(f"    hooks: {', '.join(info.hooks)}")
    if check:
        for line in failures:
            click.echo(f"check failed: {_one_line(line)}", err=True)
        if failures:
            ctx.exit(1)
        if not as_json:
            click.echo("check passed: every plugin loaded, with no conflict and no problem")
