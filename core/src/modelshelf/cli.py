"""The ``modelshelf`` command line (also ``python -m modelshelf``).

Exit codes: 0 success, 1 an error explained in one line on stderr (never a traceback), 2 bad
usage (one line too), 130 interrupted (Ctrl-C). An unexpected exception is reported as one
"internal error" line; ``MODELSHELF_DEBUG=1`` shows its traceback.

Everything shown on the terminal that came from a shelf (names, descriptions, tags, metadata,
history) goes through :func:`modelshelf.terminal.safe`, so stored escape sequences stay inert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ModelshelfError
from .terminal import safe

F = TypeVar("F", bound=Callable[..., Any])


def _shelf(ctx: click.Context) -> Any:
    from .shelf import open as open_shelf

    obj = ctx.find_root().obj
    if obj.get("shelf") is None:
        obj["shelf"] = _open_with_options(open_shelf, obj.get("url"), obj.get("options", {}), "-o")
    return obj["shelf"]


def current_shelf(ctx: click.Context) -> Any:
    """The shelf named by ``--shelf`` and ``-o`` (opened once per run): for plugin commands, which
    receive ``ctx`` through ``@click.pass_context``."""
    return _shelf(ctx)


def _open_with_options(
    opener: Callable[..., Any], url: str | None, options: dict[str, Any], flag: str
) -> Any:
    """Open a shelf; an option its storage plugin does not take is bad usage, not a crash.

    Storage factories receive ``-o`` options as keyword arguments, so an unknown one surfaces as
    the factory's ``TypeError``.
    """
    try:
        return opener(url, **options)
    except TypeError as exc:
        if not options or "argument" not in str(exc):
            raise
        names = ", ".join(f"{flag} {key}" for key in sorted(options))
        raise click.UsageError(
            f"the storage plugin for {url or 'the default shelf'} does not accept {names} ({exc}); "
            "see that plugin's documentation for its options"
        ) from None


def _storage_options(values: Iterable[str], flag: str = "--option") -> dict[str, Any]:
    """``-o KEY=VALUE`` pairs; values that read as JSON (numbers, true/false) are converted."""
    options: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=flag)
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


_json_converter: Any = None


def _json_time(value: dt.datetime) -> str:
    from .convert import converter

    try:
        return str(converter.unstructure(value))
    except (OverflowError, ValueError):
        # At the edges of the calendar (year 1 at +05:00) UTC is out of range: show the time as
        # recorded, with its own offset, rather than fail the whole listing.
        return value.isoformat()


def _emit_json(value: Any) -> None:
    """Records as JSON; ``json.dumps`` escapes control characters, so stored text stays inert."""
    global _json_converter
    if _json_converter is None:
        from .convert import converter

        _json_converter = converter.copy()
        _json_converter.register_unstructure_hook(dt.datetime, _json_time)
    click.echo(
        json.dumps(_json_converter.unstructure(value), indent=2, sort_keys=True, default=str)
    )


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _parse_size(text: str) -> int:
    units = {
        "": 1,
        "b": 1,
        "k": 1 << 10,
        "kb": 1 << 10,
        "m": 1 << 20,
        "mb": 1 << 20,
        "g": 1 << 30,
        "gb": 1 << 30,
        "t": 1 << 40,
        "tb": 1 << 40,
    }
    stripped = text.strip().lower().replace("ib", "b")
    number = stripped.rstrip("kmgtb")
    unit = stripped[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a size like 500MB or 10GB", param_hint="--max-size"
        ) from None
    # float() also reads "nan" and "inf", which no cache size can be.
    if unit not in units or not math.isfinite(value) or value < 0:
        raise click.BadParameter(
            f"{text!r} is not a size like 500MB or 10GB", param_hint="--max-size"
        )
    return int(value * units[unit])


#: The longest grace period gc accepts: a century, far more than anyone needs, and well inside
#: what a datetime can subtract from now.
MAX_GC_GRACE_SECONDS = 100 * 365 * 86400


def _grace_seconds(text: str, source: str) -> float:
    """A gc grace period in seconds from ``--grace`` or ``MODELSHELF_GC_GRACE``, checked."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_GC_GRACE_SECONDS):
        raise click.BadParameter(
            f"{text!r} is not a number of seconds from 0 to {MAX_GC_GRACE_SECONDS} (100 years), "
            "e.g. 86400 for a day",
            param_hint=source,
        )
    return value


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
                raise click.BadParameter(
                    f"{key}={value!r}: metric values must be numbers", param_hint=what
                ) from None
        else:
            result[key] = value
    return result


def _when_timestamp(seconds: float) -> str:
    """A file's modification time; any value a file system can hold is shown, never raised on."""
    try:
        return _when(dt.datetime.fromtimestamp(seconds, dt.UTC))
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.0f} s after 1970"


def _when(value: dt.datetime) -> str:
    """A stored time in local time; at the edges of the calendar (year 1 or 9999, where the
    conversion would leave the representable range) in its own recorded offset instead."""
    try:
        value = value.astimezone()
    except (OverflowError, ValueError, OSError):
        offset = value.strftime("%z") or "+0000"
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d} {offset}"
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}"


def _one_line(message: object) -> str:
    """A message as one terminal-safe line: it may quote stored text or a multi-line OS error."""
    return safe(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))


def _shown_path(exc: OSError) -> str | None:
    """The path an OS error is about: the destination of a rename, and never a temporary file
    (``.~name.random``, the way files are written atomically) but the folder it was written in."""
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    if name is None:
        return None
    path = Path(os.fsdecode(name))
    return str(path.parent if path.name.startswith(".~") else path)


_OS_ERROR_ADVICE = {
    errno.ENOSPC: "free some space on that disk, or choose another location",
    errno.EDQUOT: "free some space (your disk quota is exhausted), or choose another location",
    errno.EACCES: "check the permissions of that path, or choose another location",
    errno.EPERM: "check the permissions of that path, or choose another location",
    errno.EROFS: "that file system is read-only: choose another location",
    errno.EISDIR: "a directory is in the way: move or remove it, or choose another location",
    errno.ENOTDIR: "a file is in the way where a directory is needed: move it, or choose another location",
    errno.EEXIST: "something is in the way: move or remove it, or choose another location",
    errno.ENOENT: "check that the path exists",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer MODELSHELF_WORKERS",
}


def _os_error_message(exc: OSError, where: str | None = None) -> str:
    """One line for an OS error: what failed, on which path, and what to do.

    ``where`` names the location the operation was writing to when the error itself names no
    file (a failed ``write()`` never does), e.g. "the download cache /home/ana/.cache/modelshelf".
    """
    path = _shown_path(exc)
    reason = exc.strerror or str(exc) or type(exc).__name__
    subject = f"{path}: {reason}" if path else f"{reason} ({where})" if where else reason
    advice = _OS_ERROR_ADVICE.get(exc.errno or 0)
    if advice is None and where and path:
        advice = f"while writing to {where}"
    return f"{subject}; {advice}" if advice else subject


@contextlib.contextmanager
def _writing_to(where: str) -> Iterator[None]:
    """Turn an OS error inside the block into a one-line error naming ``where`` as the location."""
    try:
        yield
    except OSError as exc:
        raise ModelshelfError(_os_error_message(exc, where)) from exc


def _cache_location(shelf: Any) -> str:
    return f"the download cache {shelf.cache.root} (MODELSHELF_CACHE)"


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


#: Raised (click >= 8.2) for a group run without a command; older clicks exit with the help.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """Ends every failure in one line on stderr and a documented exit code, never a traceback."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:
            # No command at all: the help is the answer, then the one-line error as for any misuse.
            click.echo(exc.format_message())
            _fail("Error: give a command (listed above)", exc.exit_code)
        except click.UsageError as exc:
            # click's own report spans several lines (usage, hint, blank line, error).
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _fail(f"Error: {_one_line(exc.format_message())}{hint}", exc.exit_code)
        except click.ClickException as exc:
            _fail(f"Error: {_one_line(exc.format_message())}", exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            if sys.stderr.isatty():
                click.echo(err=True)  # ends the line the terminal's ^C echo started
            _fail("interrupted", 130)
        except ModelshelfError as exc:
            _fail(f"Error: {_one_line(exc)}", 1)
        except BrokenPipeError:
            # The reader went away (`modelshelf ls | head`): nothing more can be shown to anyone.
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
            sys.exit(1)
        except OSError as exc:
            _fail(f"Error: {_one_line(_os_error_message(exc))}", 1)
        except Exception as exc:  # the last resort: a bug must still end in one line
            _internal_error(exc)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Reported by main(); raised as Abort so click adds no blank line of its own.
            raise click.Abort() from None
        except EOFError as exc:
            # No command reads the terminal, so this is data cut short (a truncated archive),
            # which click would otherwise report as an interruption.
            raise ModelshelfError(
                f"unexpected end of data ({exc or 'a file was cut short'})"
            ) from None


def _internal_error(exc: BaseException) -> None:
    if os.environ.get("MODELSHELF_DEBUG", "") not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
        sys.exit(1)
    _fail(
        f"Error: internal error: {_one_line(f'{type(exc).__name__}: {exc}')}; please report it "
        "(run again with MODELSHELF_DEBUG=1 to see the traceback)",
        1,
    )


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


@cli.command()
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

    from .plugins import CORE_DISTRIBUTION, PluginWarning, get_registry

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


@cli.command("ls")
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
    from . import query_cli

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
    from .cards_cli import echo_card_summary
    from .trust_cli import echo_trust_info

    echo_card_summary(_shelf(ctx), version)
    echo_trust_info(_shelf(ctx), version)


def _check_file_serializer(name: str, obj: Any) -> None:
    """From the command line PATHS are files: a serializer of in-memory objects (sklearn-joblib)
    would store a pickled path, so only one that takes files is accepted."""
    from .plugins import get_registry

    entry = get_registry().serializers().get(name)
    if entry is None:
        return  # upload names what is installed, or why a plugin that has it is unavailable
    serializer = entry.serializer
    first = obj[0] if isinstance(obj, list) else obj
    if serializer.claim_depth(first) is None and serializer.files(obj) is None:
        raise click.UsageError(
            f"serializer {name!r} stores Python objects, not files, and PATHS are files: upload "
            f"with the Python API instead, shelf.upload(NAME, obj, serializer={name!r})"
        )


@cli.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="User metadata (repeatable).")
@click.option("--metric", multiple=True, metavar="KEY=NUMBER", help="A metric (repeatable).")
@click.option(
    "--param", multiple=True, metavar="KEY=VALUE", help="A training parameter (repeatable)."
)
@click.option("--tag", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--description", default="", help="Free text describing this version.")
@click.option(
    "--extra",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="An extra file stored under extra/ (repeatable).",
)
@click.option(
    "--alias", "aliases", multiple=True, help="Point this alias at the new version (repeatable)."
)
@click.option(
    "--card",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A markdown model card (YAML front matter allowed), stored as card/README.md.",
)
@click.option(
    "--serializer",
    "serializer_name",
    metavar="NAME",
    help="The serializer to store PATHS with (one that takes files; default: the one claiming them, usually `files`).",
)
@click.option(
    "--serializer-option",
    "serializer_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option for the serializer's save (repeatable); values that read as JSON (numbers, true/false) are converted.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
@click.pass_context
def upload(
    ctx: click.Context,
    name: str,
    paths: tuple[Path, ...],
    meta: tuple[str, ...],
    metric: tuple[str, ...],
    param: tuple[str, ...],
    tag: tuple[str, ...],
    description: str,
    extra: tuple[Path, ...],
    aliases: tuple[str, ...],
    serializer_name: str | None,
    serializer_options: tuple[str, ...],
    as_json: bool,
    card: Path | None,
) -> None:
    """Upload files or directories in PATHS as a new version of model NAME."""
    obj: Any = list(paths) if len(paths) > 1 else paths[0]
    options = _storage_options(serializer_options, "--serializer-option")
    if serializer_name is not None:
        _check_file_serializer(serializer_name, obj)
    shelf = _shelf(ctx)
    version = shelf.upload(
        name,
        obj,
        metadata=_pairs(meta, "--meta"),
        metrics=_pairs(metric, "--metric", number=True),
        params=_pairs(param, "--param"),
        tags=_pairs(tag, "--tag"),
        description=description,
        extra_files=list(extra) or None,
        serializer=serializer_name,
        options=options or None,
        card=card,
    )
    for alias in aliases:
        shelf.set_alias(name, alias, version.version)
    if as_json:
        _emit_json(version)
    else:
        click.echo(
            f"Uploaded {version.ref} ({len(version.files)} files, {_human_size(version.total_size)})"
        )


@cli.command()
@click.argument("ref")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--link",
    is_flag=True,
    help="Hardlink read-only files from the cache instead of copying (no extra space; never edit them).",
)
@click.pass_context
def download(ctx: click.Context, ref: str, dest: Path | None, link: bool) -> None:
    """Download version REF into DEST (default: ./NAME-vN)."""
    shelf = _shelf(ctx)
    version = shelf.get(ref)
    target = dest or Path(f"{version.name.replace('/', '-')}-v{version.version}")
    # Fetched first on its own, so that a failed write is blamed on the right place.
    with _writing_to(_cache_location(shelf)):
        shelf.fetch(version)
    with _writing_to(f"the download destination {target}"):
        shelf.download(version.ref, target, link=link)
    click.echo(f"Downloaded {safe(version.ref)} to {safe(target)}")


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
    click.echo(f"{safe(name)}@{safe(alias_name)} -> {version}{moved}")


@alias.command("rm")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.pass_context
def alias_rm(ctx: click.Context, name: str, alias_name: str) -> None:
    """Remove NAME@ALIAS."""
    _shelf(ctx).remove_alias(name, alias_name)
    click.echo(f"Removed {safe(name)}@{safe(alias_name)}")


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
        click.echo(
            f"@{safe(record.alias)} -> {record.version}  (set {_when(record.set_at)} by {safe(record.set_by)})"
        )


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
            what = f"@{safe(e.alias)} -> {e.version}" + (
                f" (was {e.previous})" if e.previous is not None else ""
            )
        elif e.action == "alias_removed":
            what = f"@{safe(e.alias)} removed (was {e.previous})"
        else:
            what = f"version {e.version}"
        click.echo(f"{_when(e.at)}  {safe(e.by):<24} {safe(e.action):<14} {what}")


@cli.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also remove aliases that point to this version.")
@click.pass_context
def delete(ctx: click.Context, ref: str, force: bool) -> None:
    """Delete version REF (NAME:N). Its number is never reused; run gc to free space."""
    tombstone = _shelf(ctx).delete(ref, force=force)
    click.echo(f"Deleted {safe(tombstone.name)}:{tombstone.version}")


@cli.command()
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
    from .trust_cli import echo_retention, retention_rule

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


@cli.command()
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


def _print_transfer(report: Any, as_json: bool, target: str) -> None:
    if as_json:
        _emit_json(report)
        return
    for source, copied in report.copied.items():
        click.echo(safe(f"{source} -> {copied}"))
    for source, present in report.present.items():
        click.echo(safe(f"{source} already on {target} as {present}"))
    for alias, version in report.aliases.items():
        click.echo(safe(f"{alias} -> {version}"))
    click.echo(
        f"{len(report.copied)} copied, {len(report.present)} already present, "
        f"{_human_size(report.bytes_sent)} sent"
    )


@cli.command()
@click.argument("ref", required=False)
@click.option("--to", "target_url", required=True, metavar="URL", help="The shelf to copy to.")
@click.option("--all", "all_models", is_flag=True, help="Copy every version of every model.")
@click.option(
    "--aliases", is_flag=True, help="Also set the source's aliases on the copied versions."
)
@click.option(
    "--to-option",
    "target_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A storage option for the target shelf.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def copy(
    ctx: click.Context,
    ref: str | None,
    target_url: str,
    all_models: bool,
    aliases: bool,
    target_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy REF to another shelf: NAME (every version), NAME:N, NAME@ALIAS, or --all.

    Only files the target lacks are sent; every file is verified; copying again sends nothing.
    """
    from .copying import copy as copy_versions
    from .shelf import open as open_shelf

    target = _open_with_options(
        open_shelf, target_url, _storage_options(target_options), "--to-option"
    )
    source = _shelf(ctx)
    with _writing_to(_cache_location(source)):  # blobs travel through the local cache
        report = copy_versions(source, target, ref, all_models=all_models, aliases=aliases)
    _print_transfer(report, as_json, target_url)


@cli.command("export")
@click.argument("arguments", nargs=-1, required=True, metavar="[REF] FILE")
@click.option(
    "--all",
    "all_models",
    is_flag=True,
    help="Export every version of every model (then give only FILE).",
)
@click.pass_context
def export_command(ctx: click.Context, arguments: tuple[str, ...], all_models: bool) -> None:
    """Write REF (as for copy) with its files into one bundle FILE (.tar, or .tar.gz)."""
    from .copying import export_bundle

    if len(arguments) > 2 or (len(arguments) == 1 and not all_models):
        raise click.UsageError("give REF and FILE, or --all and FILE")
    ref, file = (None, arguments[0]) if len(arguments) == 1 else arguments
    shelf = _shelf(ctx)
    # Writing the bundle itself fails with an error naming it; what is left is the cache.
    with _writing_to(_cache_location(shelf)):
        versions = export_bundle(shelf, ref, Path(file), all_models=all_models)
    click.echo(f"Exported {len(versions)} versions to {safe(file)}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-aliases", is_flag=True, help="Do not set the bundle's aliases.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def import_command(ctx: click.Context, file: Path, no_aliases: bool, as_json: bool) -> None:
    """Import a bundle FILE made by `modelshelf export`, verifying every file."""
    from .copying import import_bundle

    shelf = _shelf(ctx)
    with _writing_to(_cache_location(shelf)):  # blobs are verified into the cache first
        report = import_bundle(shelf, file, aliases=not no_aliases)
    _print_transfer(report, as_json, shelf.url)


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
    from .cache import Cache

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
    from .cache import Cache

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


# `modelshelf plugin new serializer|storage NAME` lives in its own module (stdlib and click only).
from .template import plugin as _plugin_template  # noqa: E402

cli.add_command(_plugin_template)

# Model cards (docs/user-guide.md) live in their own module.
from .cards_cli import card_command as _card_command  # noqa: E402

cli.add_command(_card_command)

# Policy and convert commands (docs/trust.md) live in their own module.
from .trust_cli import convert_command as _convert_command  # noqa: E402
from .trust_cli import policy as _policy_group  # noqa: E402

cli.add_command(_policy_group)
cli.add_command(_convert_command)


def _add_plugin_commands() -> None:
    from .plugins import get_registry

    registry = get_registry()
    registry.load()
    registry.broadcast("modelshelf_register_commands", cli=cli)


def _plugin_warnings_as_lines() -> None:
    """Show a :class:`~modelshelf.plugins.PluginWarning` (a plugin failed, conflicts...) as one
    ``Warning:`` line on stderr, not as Python's two lines with a source location."""
    import warnings

    from .plugins import PluginWarning

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

    from .plugins import PluginWarning

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
