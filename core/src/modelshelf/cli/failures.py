"""How every failure ends: one line on stderr and a documented exit code, never a traceback.

Exit codes: 0 success, 1 an error explained in one line, 2 bad usage (one line too), 130
interrupted (Ctrl-C). An unexpected exception is reported as one "internal error" line;
``MODELSHELF_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import ModelshelfError
from ..terminal import safe


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
