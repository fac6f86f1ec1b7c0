"""The command line, run as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MODELSHELF_URL": str(tmp_path / "shelf"), "MODELSHELF_CACHE": str(tmp_path / "cache")}


def test_full_workflow(run_cli, env: dict[str, str], tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(1000))
    (model / "config.json").write_text("{}")
    up = run_cli(
        "upload",
        "team/churn",
        str(model),
        "--metric",
        "auc=0.91",
        "--tag",
        "team=risk",
        "--meta",
        "owner=ana",
        "--description",
        "baseline",
        "--alias",
        "staging",
        env=env,
    )
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == "Uploaded team/churn:1 (2 files, 1002 B)"
    assert run_cli("upload", "team/churn", str(model / "weights.bin"), env=env).returncode == 0

    assert run_cli("ls", env=env).stdout.split() == ["team/churn"]
    listing = json.loads(run_cli("ls", "team/churn", "--json", env=env).stdout)
    assert [v["version"] for v in listing["versions"]] == [1, 2]
    assert listing["aliases"]["staging"]["version"] == 1

    info = json.loads(run_cli("info", "team/churn@staging", "--json", env=env).stdout)
    assert info["metrics"] == {"auc": 0.91} and info["tags"] == {"team": "risk"}
    assert info["metadata"] == {"owner": "ana"} and info["description"] == "baseline"
    text = run_cli("info", "team/churn:1", env=env).stdout
    assert "config.json" in text and "metrics: auc=0.91" in text

    moved = run_cli("alias", "set", "team/churn", "staging", "2", env=env)
    assert moved.stdout.strip() == "team/churn@staging -> 2 (was 1)"
    assert "@staging -> 2" in run_cli("alias", "ls", "team/churn", env=env).stdout
    history = run_cli("history", "team/churn", "--json", env=env)
    assert [e["action"] for e in json.loads(history.stdout)] == [
        "upload",
        "alias_set",
        "upload",
        "alias_set",
    ]

    dest = tmp_path / "out"
    down = run_cli("download", "team/churn:1", str(dest), env=env)
    assert down.returncode == 0, down.stderr
    assert (dest / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
    assert "0 files" in run_cli("cache", "ls", env=env).stdout  # a download leaves the cache alone
    default_dest = run_cli("download", "team/churn@staging", "--keep-cache", env=env, cwd=tmp_path)
    assert (tmp_path / "team-churn-v2" / "weights.bin").exists(), default_dest.stderr

    assert run_cli("verify", env=env).stdout.strip() == "OK: every stored file matches its sha256"
    assert run_cli("delete", "team/churn:1", env=env).returncode == 0
    assert "Would remove 1 blobs" in run_cli("gc", "--dry-run", "--grace", "0", env=env).stdout
    assert "Removed 1 blobs" in run_cli("gc", "--grace", "0", env=env).stdout
    assert "1 files, 1000 B" in run_cli("cache", "ls", env=env).stdout  # v2: weights.bin alone
    assert "Evicted" in run_cli("cache", "prune", "--max-size", "0", env=env).stdout
    assert "0 files" in run_cli("cache", "ls", env=env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "nope:1"], "no model named 'nope'"),
        (["upload", "../x", "{model}"], "invalid model name '../x'"),
        (["info", "m:7"], "m has no version 7: existing versions are 1"),
        (["info", "m@prod"], "m has no alias 'prod'"),
        (["--shelf", "s3x://b", "ls"], "no storage plugin handles s3x:// URLs"),
        (["delete", "m"], "name the version to delete explicitly"),
        (["alias", "set", "m", "latest", "1"], "'latest' is reserved"),
    ],
)
def test_user_errors_are_one_line_with_exit_1(
    run_cli, env, tmp_path: Path, args: list[str], message: str
) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    assert run_cli("upload", "m", str(model), env=env).returncode == 0
    result = run_cli(*[a.format(model=model) for a in args], env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_usage_errors_exit_2(run_cli, env) -> None:
    assert run_cli("upload", env=env).returncode == 2
    assert run_cli("no-such-command", env=env).returncode == 2
    assert run_cli("upload", "m", "--metric", "auc=high", "/", env=env).returncode == 2


def test_verify_exits_1_on_corruption(run_cli, env, tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"original")
    run_cli("upload", "m", str(model), env=env)
    blob = next((tmp_path / "shelf" / "blobs").rglob("*"), None)
    blobs = [p for p in (tmp_path / "shelf" / "blobs").rglob("*") if p.is_file()]
    assert blob is not None and len(blobs) == 1
    blobs[0].write_bytes(b"tampered")
    result = run_cli("verify", env=env)
    assert result.returncode == 1
    assert result.stdout.strip() == "m:1/m.bin: blob content does not match its sha256"


def test_python_dash_m_and_help(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in [
        "plugins",
        "ls",
        "info",
        "upload",
        "download",
        "alias",
        "history",
        "delete",
        "gc",
        "verify",
        "cache",
    ]:
        assert f"  {command} " in result.stdout or f"  {command}\n" in result.stdout
