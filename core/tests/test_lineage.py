"""Lineage is recorded automatically, and cheaply outside a git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from modelshelf import lineage


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_git_commit_branch_and_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_shelf
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trainer")
    (repo / "train.py").write_text("print(1)\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo / ".")
    info = lineage.git_info()
    assert info is not None and (info.commit, info.branch, info.dirty) == (commit, "trainer", False)
    (repo / "train.py").write_text("print(2)\n")
    version = local_shelf.upload("m", repo / "train.py")
    assert version.lineage.git is not None
    assert (version.lineage.git.commit, version.lineage.git.dirty) == (commit, True)
    git(repo, "pack-refs", "--all")  # commits only in packed-refs are found too
    assert lineage.git_info().commit == commit


def test_no_subprocess_outside_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_shelf
) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)

    def forbidden(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a subprocess was started outside a git repository")

    monkeypatch.setattr(subprocess, "run", forbidden)
    (outside / "f.txt").write_text("x")
    version = local_shelf.upload("m", outside / "f.txt")
    assert version.lineage.git is None
    assert version.lineage.python and version.lineage.platform
    assert version.created_by
