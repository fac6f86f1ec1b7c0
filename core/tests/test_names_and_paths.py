"""Names, references and stored paths are checked before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelshelf.errors import InvalidName, InvalidRecord
from modelshelf.refs import Ref, check_alias, check_file_path, check_name, parse_ref

BAD_NAMES = [
    "../x",
    "/abs",
    "a//b",
    "_versions",
    "a/_versions",
    ".hidden",
    "a/.b",
    "",
    "x" * 10_000,
    "nul\x00byte",
    "a/",
    "/",
    "a\\b",
    "-dash",
    "sp ace",
    "a/../b",
    "C:",
    "ü",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_before_any_io(
    name: str, counting_shelf, model_file: Path, tmp_path: Path
) -> None:
    shelf = counting_shelf
    operations = [
        lambda: shelf.upload(name, model_file),
        lambda: shelf.versions(name),
        lambda: shelf.get(name),
        lambda: shelf.get(f"{name}:1"),
        lambda: shelf.set_alias(name, "prod", 1),
        lambda: shelf.aliases(name),
        lambda: shelf.history(name),
        lambda: shelf.delete(f"{name}:1"),
        lambda: shelf.download(name, tmp_path / "dest"),
        lambda: shelf.load(name),
    ]
    for operation in operations:
        with pytest.raises(InvalidName) as info:
            operation()
        assert "\n" not in str(info.value)
    assert shelf.storage.calls == []
    assert not (tmp_path / "shelf").exists()


def test_nothing_is_written_outside_the_root(
    tmp_path: Path, model_file: Path, counting_shelf
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    for name in BAD_NAMES:
        with pytest.raises(InvalidName):
            counting_shelf.upload(name, model_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("alias", ["latest", "42", "../x", "_a", "a b"])
def test_bad_aliases(alias: str, counting_shelf) -> None:
    with pytest.raises(InvalidName):
        counting_shelf.set_alias("m", alias, 1)
    assert counting_shelf.storage.calls == []


def test_good_names() -> None:
    for name in ["churn", "team/churn", "a.b-c_d", "A1/b2/c3", "x" * 200]:
        assert check_name(name) == name
    assert check_alias("prod") == "prod"
    with pytest.raises(InvalidName):
        check_name("x" * 201)


def test_parse_refs() -> None:
    assert parse_ref("churn") == Ref("churn")
    assert parse_ref("team/churn:3") == Ref("team/churn", version=3)
    assert parse_ref("churn:latest") == Ref("churn")
    assert parse_ref("churn@prod") == Ref("churn", alias="prod")
    for bad in ["churn:0", "churn:-1", "churn:x", "churn@", "@prod", ":3", "churn:3:4"]:
        with pytest.raises(InvalidName):
            parse_ref(bad)


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "C:/x",
        "c:x",
        "a\\b",
        "",
        ".",
        "a//b",
        "a/./b",
        "x\x00",
        "x\ny",
    ],
)
def test_escaping_file_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidRecord):
        check_file_path(path)
