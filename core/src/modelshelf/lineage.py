"""Where a version was made: Python, platform, package versions and git state, gathered cheaply.

Git facts are read from the ``.git`` directory itself; a ``git`` subprocess runs only to learn
whether the work tree is dirty, and only when the current directory is inside a repository.
"""

from __future__ import annotations

import functools
import getpass
import importlib.metadata as metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

from .records import GitInfo, Lineage


@functools.lru_cache(maxsize=1)
def current_user() -> str:
    """``MODELSHELF_USER``, else ``user@host``."""
    configured = os.environ.get("MODELSHELF_USER")
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _find_git_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / ".git"
        if candidate.is_dir():
            return candidate
        if candidate.is_file():  # worktrees and submodules: "gitdir: <path>"
            text = candidate.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                return (folder / text[len("gitdir:") :].strip()).resolve()
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    loose = git_dir / ref
    if loose.is_file():
        return loose.read_text().strip() or None
    common = git_dir / "commondir"
    roots = [git_dir]
    if common.is_file():
        roots.append((git_dir / common.read_text().strip()).resolve())
    for root in roots:
        if (root / ref).is_file():
            return (root / ref).read_text().strip() or None
        packed = root / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(errors="replace").splitlines():
                parts = line.split(" ", 1)
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    return None


def git_info(start: Path | None = None) -> GitInfo | None:
    """Commit, branch and dirtiness of the repository containing ``start`` (default: cwd)."""
    try:
        git_dir = _find_git_dir((start or Path.cwd()).absolute())
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    branch = None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref.removeprefix("refs/heads/")
        commit = _read_ref(git_dir, ref)
    else:
        commit = head or None
    dirty: bool | None = None
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=start or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode == 0:
            dirty = bool(result.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return GitInfo(commit=commit, branch=branch, dirty=dirty)


def collect_lineage(packages: dict[str, str]) -> Lineage:
    versions = {"modelshelf": package_version("modelshelf") or "?"}
    versions.update(packages)
    return Lineage(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=versions,
        git=git_info(),
    )
