"""Every command over bad input, run as a user runs it: one line on stderr, a documented exit code.

Exit codes (README): 0 success, 1 an error explained in one line, 2 bad usage, 130 interrupted.
A failure never shows a traceback; an unexpected one says "internal error" (the traceback only
with ``MODELSHELF_DEBUG=1``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

# Runs the CLI with one fault injected where the real world would raise it (a full disk, a denied
# write, Ctrl-C, a bug), which running as root or on a roomy disk cannot provoke for real.
FAULT_RUNNER = r"""
import errno, os, shutil, sys, tarfile
fault = sys.argv.pop(1)

def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a failed write names no file

class FullDisk:  # a file opened for writing whose every write fails as on a full disk
    def __init__(self, handle):
        self.handle = handle
    def write(self, data):
        full()
    def __getattr__(self, name):
        return getattr(self.handle, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.handle.close()

if fault == "cache-full":
    import builtins
    real_open = builtins.open
    cache = os.path.abspath(os.environ["MODELSHELF_CACHE"]) + os.sep
    def open_in_cache(file, mode="r", *args, **kwargs):
        # Only files written below the cache fail, at their first write.
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and ("w" in mode or "x" in mode) and (
            os.path.abspath(os.fspath(file)).startswith(cache)
        ):
            return FullDisk(handle)
        return handle
    builtins.open = open_in_cache
    real_copy = getattr(os, "copy_file_range", None)
    def copy_into_cache(source, target, count, *args):
        # The kernel's copy (a local shelf) fails as the disk fills, when it writes to the cache.
        if os.readlink(f"/proc/self/fd/{target}").startswith(cache):
            full()
        return real_copy(source, target, count, *args)
    if real_copy is not None:
        os.copy_file_range = copy_into_cache
elif fault in ("dest-full", "dest-denied"):
    import builtins
    real_open = builtins.open
    def open_in_out(file, mode="r", *args, **kwargs):
        # Only files created below the download destination "out" fail.
        if isinstance(file, (str, os.PathLike)) and f"{os.sep}out{os.sep}" in os.fspath(file) and (
            "w" in mode or "x" in mode
        ):
            if fault == "dest-full":
                full()
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)
    builtins.open = open_in_out
    real_os_open = os.open
    def os_open_in_out(path, flags, mode=0o777, *, dir_fd=None):
        # The same for files the kernel's copy writes (a local shelf), created with os.open.
        if f"{os.sep}out{os.sep}" in os.fspath(path) and flags & (os.O_WRONLY | os.O_RDWR):
            if fault == "dest-full":
                full()
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_os_open(path, flags, mode, dir_fd=dir_fd)
    os.open = os_open_in_out
    os.supports_dir_fd.add(os_open_in_out)  # the directory backend checks it can use dir_fd
elif fault == "export-full":
    tarfile.TarFile.addfile = full
elif fault == "cache-denied":
    import modelshelf.cache
    def blobs(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.root / "blobs"))
    modelshelf.cache.Cache.blobs = blobs
elif fault in ("interrupt", "bug"):
    import modelshelf.shelf
    def models(self):
        raise KeyboardInterrupt() if fault == "interrupt" else RuntimeError("a bug\nover two lines")
    modelshelf.shelf.Shelf.models = models
from modelshelf.cli import main
main()
"""


@attrs.frozen
class Case:
    id: str
    args: tuple[str, ...]
    code: int
    #: Prepares the case's files in its directory before the run (see SETUPS).
    setup: str | None = None
    env: dict[str, str] = attrs.field(factory=dict)
    fault: str | None = None
    #: A fragment the one line on stderr must contain.
    says: str = ""


def _case(id: str, *args: str, code: int, **kwargs: Any) -> Case:
    return Case(id, args, code, **kwargs)


# Paths in args and env are relative to the case's directory, which is also the working directory.
CASES = [
    # upload
    _case("upload-bad-name", "upload", "../x", "m.bin", code=1, says="invalid model name"),
    _case("upload-missing-file", "upload", "m", "nope.bin", code=2),
    _case(
        "upload-symlinked-dir",
        "upload",
        "m",
        "tree",
        code=1,
        setup="symlinked_dir",
        says="tree/linked",
    ),
    _case(
        "upload-dangling-link",
        "upload",
        "m",
        "tree",
        code=1,
        setup="dangling_link",
        says="tree/gone",
    ),
    _case(
        "upload-unknown-storage-option",
        "-o",
        "colour=red",
        "upload",
        "m",
        "m.bin",
        code=2,
        says="colour",
    ),
    _case("upload-shelf-under-a-file", "--shelf", "m.bin/shelf", "upload", "m", "m.bin", code=1),
    # ls / info
    _case("ls-unknown-storage-option", "-o", "colour=red", "ls", code=2, says="colour"),
    _case("ls-bad-option-syntax", "-o", "colour", "ls", code=2),
    _case("ls-no-model", "ls", "nope", code=1, says="no model named"),
    _case("ls-year-1-west", "ls", "m", code=0, setup="year_1", env={"TZ": "America/New_York"}),
    _case("ls-year-9999-east", "ls", "m", code=0, setup="year_9999", env={"TZ": "Asia/Tokyo"}),
    _case("ls-year-1-offset", "ls", "m", code=0, setup="year_1_offset"),
    _case("ls-json-year-1-offset", "ls", "m", "--json", code=0, setup="year_1_offset"),
    _case("info-year-1-west", "info", "m", code=0, setup="year_1", env={"TZ": "America/New_York"}),
    _case("info-year-9999-east", "info", "m", code=0, setup="year_9999", env={"TZ": "Asia/Tokyo"}),
    _case("info-json-year-9999-offset", "info", "m", "--json", code=0, setup="year_9999_offset"),
    _case("info-bad-ref", "info", "m:x:y", code=1),
    # download
    _case(
        "download-dir-in-the-way",
        "download",
        "m",
        "out",
        code=1,
        setup="dir_in_the_way",
        says="out/m.bin",
    ),
    _case("download-under-a-file", "download", "m", "m.bin/out", code=1, says="m.bin"),
    _case(
        "download-cache-under-a-file",
        "download",
        "m",
        "out",
        "--keep-cache",
        code=1,
        env={"MODELSHELF_CACHE": "m.bin/cache"},
        says="m.bin/cache",
    ),
    _case(
        "download-cache-full",
        "download",
        "m",
        "out",
        "--keep-cache",
        code=1,
        fault="cache-full",
        says="cache",
    ),
    _case(
        "download-link-cache-full",
        "download",
        "m",
        "out",
        "--link",
        code=1,
        fault="cache-full",
        says="cache",
    ),
    _case("download-dest-full", "download", "m", "out", code=1, fault="dest-full", says="out"),
    _case("download-dest-denied", "download", "m", "out", code=1, fault="dest-denied", says="out"),
    _case("download-no-version", "download", "m:9", code=1),
    # alias
    _case("alias-set-not-a-number", "alias", "set", "m", "prod", "one", code=2),
    _case("alias-set-no-version", "alias", "set", "m", "prod", "9", code=1),
    _case("alias-set-bad-alias", "alias", "set", "m", "../prod", "1", code=1),
    _case("alias-rm-missing", "alias", "rm", "m", "nope", code=1),
    _case(
        "alias-ls-no-model", "alias", "ls", "nope", code=0
    ),  # no aliases, as for any model without them
    _case(
        "alias-ls-year-1",
        "alias",
        "ls",
        "m",
        code=0,
        setup="alias_year_1",
        env={"TZ": "America/New_York"},
    ),
    # history
    _case("history-no-model", "history", "nope", code=1),
    _case(
        "history-year-9999",
        "history",
        "m",
        code=0,
        setup="event_year_9999",
        env={"TZ": "Asia/Tokyo"},
    ),
    # delete
    _case("delete-unversioned", "delete", "m", code=1),
    _case("delete-no-version", "delete", "m:9", code=1),
    # gc
    _case("gc-grace-inf", "gc", "--grace", "inf", code=2, says="--grace"),
    _case("gc-grace-nan", "gc", "--grace", "nan", code=2, says="--grace"),
    _case("gc-grace-huge", "gc", "--grace", "1e20", code=2, says="--grace"),
    _case("gc-grace-negative", "gc", "--grace", "-5", code=2, says="--grace"),
    _case("gc-grace-text", "gc", "--grace", "soon", code=2, says="--grace"),
    _case(
        "gc-env-text",
        "gc",
        "--dry-run",
        code=2,
        env={"MODELSHELF_GC_GRACE": "abc"},
        says="MODELSHELF_GC_GRACE",
    ),
    _case(
        "gc-env-nan",
        "gc",
        "--dry-run",
        code=2,
        env={"MODELSHELF_GC_GRACE": "nan"},
        says="MODELSHELF_GC_GRACE",
    ),
    _case(
        "gc-env-inf",
        "gc",
        "--dry-run",
        code=2,
        env={"MODELSHELF_GC_GRACE": "inf"},
        says="MODELSHELF_GC_GRACE",
    ),
    _case(
        "gc-env-negative",
        "gc",
        "--dry-run",
        code=2,
        env={"MODELSHELF_GC_GRACE": "-5"},
        says="MODELSHELF_GC_GRACE",
    ),
    # verify
    _case("verify-no-model", "verify", "nope", code=1),
    # cache
    _case("cache-ls-denied", "cache", "ls", code=1, fault="cache-denied", says="cache"),
    _case("cache-prune-nan", "cache", "prune", "--max-size", "nan", code=2, says="--max-size"),
    _case("cache-prune-inf", "cache", "prune", "--max-size", "inf", code=2, says="--max-size"),
    _case(
        "cache-prune-negative", "cache", "prune", "--max-size", "-1GB", code=2, says="--max-size"
    ),
    _case("cache-prune-huge", "cache", "prune", "--max-size", "1e400TB", code=2, says="--max-size"),
    _case("cache-prune-missing", "cache", "prune", code=2),
    _case("cache-verify-bad-option", "cache", "verify", "--bogus", code=2, says="--bogus"),
    # plugins
    _case("plugins-bad-option", "plugins", "--bogus", code=2, says="--bogus"),
    _case("no-such-command", "frobnicate", code=2),
    _case("no-command", code=2, says="give a command"),
    _case("alias-no-subcommand", "alias", code=2, says="give a command"),
    # copy
    _case(
        "copy-unknown-target-option",
        "copy",
        "m",
        "--to",
        "other",
        "--to-option",
        "colour=red",
        code=2,
        says="colour",
    ),
    _case("copy-target-under-a-file", "copy", "m", "--to", "m.bin/other", code=1),
    _case("copy-nothing-named", "copy", "--to", "other", code=1),
    # export
    _case("export-to-a-directory", "export", "m", "adir", code=1, setup="a_dir", says="adir"),
    _case("export-missing-parent", "export", "m", "no/such/b.tar", code=1, says="no/such"),
    _case("export-disk-full", "export", "m", "b.tar", code=1, fault="export-full", says="b.tar"),
    _case("export-only-file", "export", "b.tar", code=2),
    _case(
        "export-year-1-offset",
        "export",
        "m",
        "b.tar",
        code=1,
        setup="year_1_offset",
        says="out of range",
    ),
    _case("copy-year-1-offset", "copy", "m", "--to", "other", code=0, setup="year_1_offset"),
    # import
    _case("import-missing", "import", "nope.tar", code=2),
    _case("import-directory", "import", "adir", code=2, setup="a_dir"),
    _case("import-not-a-tar", "import", "m.bin", code=1),
    _case(
        "import-truncated", "import", "t.tar.gz", code=1, setup="truncated_bundle", says="t.tar.gz"
    ),
    _case("import-index-list", "import", "b.tar", code=1, setup="bundle:[]"),
    _case(
        "import-aliases-list",
        "import",
        "b.tar",
        code=1,
        setup='bundle:{"format": 1, "aliases": [1]}',
    ),
    _case(
        "import-aliases-of-list",
        "import",
        "b.tar",
        code=1,
        setup='bundle:{"format": 1, "aliases": {"m": [1]}}',
    ),
    _case(
        "import-alias-to-list",
        "import",
        "b.tar",
        code=1,
        setup='bundle:{"format": 1, "aliases": {"m": {"prod": [1]}}}',
    ),
    _case(
        "import-alias-to-bool",
        "import",
        "b.tar",
        code=1,
        setup='bundle:{"format": 1, "aliases": {"m": {"prod": true}}}',
    ),
    _case("import-format-bool", "import", "b.tar", code=1, setup='bundle:{"format": true}'),
    _case(
        "import-source-list", "import", "b.tar", code=1, setup='bundle:{"format": 1, "source": [1]}'
    ),
    _case(
        "import-cache-full",
        "import",
        "b.tar",
        code=1,
        setup="bundle:ok",
        fault="cache-full",
        says="cache",
    ),
    # the last-resort handlers
    _case("interrupted", "ls", code=130, fault="interrupt", says="interrupted"),
    _case("internal-error", "ls", code=1, fault="bug", says="internal error"),
]


# --- setups ----------------------------------------------------------------------------------


def _edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.chmod(0o644)
    path.write_text(json.dumps(data))


def _manifest(case_dir: Path) -> Path:
    return next((case_dir / "shelf" / "models" / "m" / "_versions").glob("*.json"))


def _symlinked_dir(case_dir: Path) -> None:
    (case_dir / "tree").mkdir()
    (case_dir / "tree" / "a.bin").write_bytes(b"a")
    (case_dir / "elsewhere").mkdir()
    (case_dir / "elsewhere" / "b.bin").write_bytes(b"b")
    (case_dir / "tree" / "linked").symlink_to(case_dir / "elsewhere", target_is_directory=True)


def _dangling_link(case_dir: Path) -> None:
    (case_dir / "tree").mkdir()
    (case_dir / "tree" / "a.bin").write_bytes(b"a")
    (case_dir / "tree" / "gone").symlink_to(case_dir / "nothing-here")


def _bundle(case_dir: Path, index: str) -> None:
    ok = case_dir / "ok.tar"
    with tarfile.open(ok) as source, tarfile.open(case_dir / "b.tar", "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "modelshelf-bundle.json" and index != "ok":
                data = index.encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))


SETUPS: dict[str, Callable[[Path], None]] = {
    "year_1": lambda d: _edit_json(_manifest(d), created_at="0001-01-01T00:00:00Z"),
    "year_9999": lambda d: _edit_json(_manifest(d), created_at="9999-12-31T23:59:59Z"),
    "year_1_offset": lambda d: _edit_json(_manifest(d), created_at="0001-01-01T00:00:00+05:00"),
    "year_9999_offset": lambda d: _edit_json(_manifest(d), created_at="9999-12-31T23:59:59-05:00"),
    "alias_year_1": lambda d: _edit_json(
        d / "shelf" / "models" / "m" / "_aliases" / "prod.json", set_at="0001-01-01T00:00:00Z"
    ),
    "event_year_9999": lambda d: (
        [
            _edit_json(p, at="9999-12-31T23:59:59Z")
            for p in (d / "shelf" / "models" / "m" / "_log").glob("*.json")
        ]
        and None
    ),
    "dir_in_the_way": lambda d: (d / "out" / "m.bin").mkdir(parents=True),
    "a_dir": lambda d: (d / "adir").mkdir(),
    "truncated_bundle": lambda d: (d / "t.tar.gz").write_bytes(
        gzip.compress((d / "ok.tar").read_bytes())[:-100]
    ),
    "symlinked_dir": _symlinked_dir,
    "dangling_link": _dangling_link,
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shelf holding ``m:1`` (file ``m.bin``, alias ``prod``) and a bundle of it, ``ok.tar``."""
    import modelshelf
    from modelshelf.copying import export_bundle

    base = tmp_path_factory.mktemp("template")
    (base / "m.bin").write_bytes(b"model bytes")
    shelf = modelshelf.open(str(base / "shelf"), cache=base / "cache")
    shelf.upload("m", base / "m.bin")
    shelf.set_alias("m", "prod", 1)
    export_bundle(shelf, "m:1", base / "ok.tar")
    shutil.rmtree(base / "cache")  # each case starts with an empty cache
    return base


def _run(
    case_dir: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    fault: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-c", FAULT_RUNNER, fault]
        if fault
        else [sys.executable, "-m", "modelshelf"]
    )
    base = {k: v for k, v in os.environ.items() if k != "MODELSHELF_DEBUG"}
    full_env = {
        **base,
        "MODELSHELF_URL": str(case_dir / "shelf"),
        "MODELSHELF_CACHE": str(case_dir / "cache"),
        "TZ": "UTC",
        **{k: str(case_dir / v) if k == "MODELSHELF_CACHE" else v for k, v in env.items()},
    }
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=case_dir,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_in_one_line_and_a_documented_exit_code(
    template: Path, tmp_path: Path, case: Case
) -> None:
    case_dir = tmp_path / "case"
    shutil.copytree(template, case_dir, symlinks=True)
    if case.setup is not None:
        kind, _, argument = case.setup.partition(":")
        if kind == "bundle":
            _bundle(case_dir, argument)
        else:
            SETUPS[case.setup](case_dir)
    result = _run(case_dir, case.args, case.env, case.fault)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == case.code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.code == 0:
        assert lines == [], result.stderr
        return
    assert len(lines) == 1 and result.stderr.count("\n") == 1, result.stderr
    assert case.says in lines[0], lines[0]


def _command_of(args: tuple[str, ...]) -> str:
    rest = list(args)
    while rest and rest[0] in ("-o", "--shelf"):  # global options and their values
        rest = rest[2:]
    return (
        " ".join(rest[:2]) if rest and rest[0] in ("alias", "cache") else (rest[0] if rest else "")
    )


def test_every_command_is_exercised() -> None:
    """The table covers every command of core's CLI (a new command needs rows here too); plugin
    commands are tested with their plugin (import-modelstore: plugins/modelstore/tests)."""
    wanted = {
        "upload",
        "ls",
        "info",
        "download",
        "alias set",
        "alias rm",
        "alias ls",
        "history",
        "delete",
        "gc",
        "verify",
        "cache ls",
        "cache prune",
        "plugins",
        "copy",
        "export",
        "import",
    }
    assert wanted <= {_command_of(c.args) for c in CASES}


def test_internal_errors_show_the_traceback_only_when_debugging(
    template: Path, tmp_path: Path
) -> None:
    case_dir = tmp_path / "case"
    shutil.copytree(template, case_dir, symlinks=True)
    quiet = _run(case_dir, ("ls",), {}, "bug")
    assert "MODELSHELF_DEBUG=1" in quiet.stderr and "please report it" in quiet.stderr
    debug = _run(case_dir, ("ls",), {"MODELSHELF_DEBUG": "1"}, "bug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "RuntimeError: a bug" in debug.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fifos")
def _wait_until_blocked_opening_a_fifo(pid: int, timeout: float = 120.0) -> None:
    """Until the process sleeps in the kernel waiting for the fifo's writer (on a loaded machine
    its start-up alone can take seconds, and a signal sent earlier would test something else)."""
    wchan = Path(f"/proc/{pid}/wchan")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if wchan.read_text() == "wait_for_partner":
                return
        except OSError:  # no /proc here: fall back on a pause
            time.sleep(1.5)
            return
        time.sleep(0.05)
    raise AssertionError(f"the process never blocked opening the fifo within {timeout} s")


def test_ctrl_c_exits_130_with_one_line(template: Path, tmp_path: Path) -> None:
    """A real SIGINT while ``import`` waits on a fifo that nobody writes to."""
    case_dir = tmp_path / "case"
    shutil.copytree(template, case_dir, symlinks=True)
    os.mkfifo(case_dir / "pipe.tar")
    env = {
        **os.environ,
        "MODELSHELF_URL": str(case_dir / "shelf"),
        "MODELSHELF_CACHE": str(case_dir / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "modelshelf", "import", "pipe.tar"],
        cwd=case_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_blocked_opening_a_fifo(process.pid)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["interrupted"]
