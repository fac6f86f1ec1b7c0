"""Hostile input: names, references, stored records and file paths of every shape.

The parsers of everything a shelf reads or a user types must refuse bad input with a one-line
``ModelshelfError`` (never a raw KeyError/TypeError/ValueError/RecursionError), and whatever they
accept must be safe: a name never escapes its key space, a path never leaves its destination.
Property tests (hypothesis) plus a seeded mutation fuzzer over real manifest and alias JSON, then
end-to-end checks that hostile manifests on a real shelf write nothing outside the destination.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from modelshelf import convert
from modelshelf.errors import InvalidName, InvalidRecord, ModelshelfError, SchemaTooNew
from modelshelf.records import (
    SCHEMA,
    Alias,
    Event,
    FileEntry,
    Lineage,
    ModelVersion,
    SerializerInfo,
    Tombstone,
)
from modelshelf.refs import MAX_NAME_LENGTH, check_alias, check_file_path, check_name, parse_ref
from modelshelf.storage import check_key
from rel_backends import count, one_line_error, tree_digests

FUZZ_ROUNDS = count(1500, 20000)
EXAMPLES = count(300, 3000)
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# Text that mixes the characters that matter (separators, dots, digits, unicode look-alikes, NUL).
_TRICKY = st.lists(
    st.sampled_from(
        [
            *"aZ09._-/@:\\ \t\n\x00~%$",
            "..",
            "²",
            "\u0661",
            "\uff21",
            "é",
            "\u202e",
            "\ud7ff",
            "latest",
        ]
    ),
    max_size=30,
).map("".join) | st.text(max_size=40)


def _refused(call: Any, *args: Any) -> ModelshelfError | None:
    """Run ``call``; return the ModelshelfError it raised (checked to be one line), or None."""
    try:
        call(*args)
    except ModelshelfError as exc:
        one_line_error(exc)
        return exc
    return None


# --- names and references ------------------------------------------------------------------


@_FAST
@given(_TRICKY | st.text(min_size=190, max_size=260, alphabet="ab/"))
def test_names_are_valid_or_refused(name: str) -> None:
    if _refused(check_name, name) is not None:
        return
    assert len(name) <= MAX_NAME_LENGTH
    for segment in name.split("/"):
        assert _SEGMENT.fullmatch(segment) and segment.isascii()
    # Whatever is accepted stays inside its own key space.
    check_key(f"models/{name}/_versions/0000000001.json")
    assert "/_" not in f"/{name}" and "/." not in f"/{name}"


@_FAST
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.binary(),
        st.lists(st.text()),
        st.dictionaries(st.text(), st.text()),
    )
)
def test_non_strings_are_refused_as_names_and_refs(value: Any) -> None:
    for call in (check_name, check_alias, parse_ref, check_file_path):
        assert _refused(call, value) is not None


def _check_parsed(text: str) -> None:
    refused = _refused(parse_ref, text)
    if refused is not None:
        assert isinstance(refused, InvalidName)
        return
    ref = parse_ref(text)
    check_name(ref.name)
    if ref.version is not None:
        assert ref.version >= 1 and str(ref.version) in text
        # A version is written in ASCII digits; anything else is not a version number.
        assert text.rpartition(":")[2].isascii()
    if ref.alias is not None:
        check_name(ref.alias, "alias")
    assert parse_ref(str(ref)) == ref  # what we print parses back to the same thing


@_FAST
@given(
    st.sampled_from(["m", "team/churn", "a.b-c_d"]),
    st.sampled_from([":", "@", "", "::", ":@", "@:"]),
    st.text(alphabet="0123456789abclatest.-_/@:", max_size=30),
)
def test_refs_from_ascii_pieces_parse_or_are_refused(name: str, sep: str, rest: str) -> None:
    _check_parsed(name + sep + rest)


@_FAST
@given(_TRICKY)
@example("m:²")
@example("m:١٢")
@example("m:" + "9" * 5000)
def test_any_reference_parses_or_is_refused(text: str) -> None:
    _check_parsed(text)


@_FAST
@given(_TRICKY)
def test_aliases_never_look_like_versions_or_latest(alias: str) -> None:
    if _refused(check_alias, alias) is None:
        assert alias != "latest" and not alias.isdigit()


# --- file paths stored in manifests --------------------------------------------------------


_PATHS = st.one_of(
    _TRICKY,
    st.lists(
        st.sampled_from(
            ["..", ".", "", "a", "b.bin", "C:", "c:", "\\", "~", "/", "..\\x", "a\\..\\..\\b"]
        ),
        max_size=6,
    ).map("/".join),
    st.sampled_from(
        [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "C:/Windows/x",
            "C:x",
            "\\\\server\\share\\x",
            "a/./b",
            "a//b",
            "x" * 1025,
            "nul\x00.bin",
            "a/\x1b[2J",
        ]
    ),
)


@_FAST
@given(_PATHS)
def test_file_paths_are_relative_and_stay_inside(path: str) -> None:
    if _refused(check_file_path, path) is not None:
        return
    dest = Path("/srv/dest")
    for flavour in (PurePosixPath, PureWindowsPath):
        pure = flavour(path)
        assert not pure.is_absolute() and not pure.drive and ".." not in pure.parts
    target = dest.joinpath(*path.split("/"))
    assert os.path.normpath(target).startswith(str(dest) + os.sep)


# --- stored records ------------------------------------------------------------------------


def _manifest() -> ModelVersion:
    now = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    return ModelVersion(
        name="team/churn",
        version=3,
        created_at=now,
        created_by="ci",
        serializer=SerializerInfo(
            "files", "modelshelf", "0.1.0", "files", True, {"single_file": None}
        ),
        framework=None,
        files=(FileEntry("model.bin", "ab" * 32, 10), FileEntry("sub/cfg.json", "cd" * 32, 2)),
        total_size=12,
        lineage=Lineage("3.11", "linux", {"modelshelf": "0.1.0"}),
        metadata={"k": [1, {"x": None}]},
        metrics={"auc": 0.9},
        params={"p": 1},
        tags={"t": "v"},
    )


MANIFEST = json.loads(convert.to_json(_manifest()))
ALIAS = json.loads(
    convert.to_json(Alias("team/churn", "prod", 3, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), "ci"))
)
TOMBSTONE = json.loads(
    convert.to_json(Tombstone("team/churn", 3, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), "ci"))
)


def _parse_manifest(data: bytes) -> None:
    """Parse; whatever is accepted must be structurally safe to download."""
    record = convert.manifest_from_json(data, source="fuzz")
    if isinstance(record, ModelVersion):
        for entry in record.files:
            check_file_path(entry.path)
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256) and entry.size >= 0
        check_name(record.name)
    else:
        assert isinstance(record, Tombstone)


def _parse_alias(data: bytes) -> None:
    convert.from_json(data, Alias, source="fuzz")


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """One random structural mutation somewhere inside ``value`` (JSON)."""
    junk = [
        None,
        True,
        0,
        -1,
        2**70,
        1.5,
        float("nan"),
        "",
        "..",
        "../../etc/passwd",
        "/abs",
        "C:\\x",
        "x" * 5000,
        [],
        {},
        [1, 2],
        {"path": "../x"},
        "2024-13-45T99:99:99Z",
        "\x00",
        "ab" * 32,
    ]
    if isinstance(value, dict) and value and rng.random() < 0.85:
        key = rng.choice(sorted(value))
        copy = dict(value)
        action = rng.random()
        if action < 0.2:
            del copy[key]
        elif action < 0.3:
            copy[rng.choice(["kind", "schema", "extra", "files", "__class__", key + "_"])] = (
                rng.choice(junk)
            )
        else:
            copy[key] = _mutate(rng, value[key], depth + 1)
        return copy
    if isinstance(value, list) and value and rng.random() < 0.85:
        copy = list(value)
        i = rng.randrange(len(copy))
        action = rng.random()
        if action < 0.2:
            del copy[i]
        elif action < 0.35:
            copy.append(rng.choice(copy))
        else:
            copy[i] = _mutate(rng, copy[i], depth + 1)
        return copy
    return rng.choice(junk)


def _fuzz_bytes(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        i = rng.randrange(len(raw))
        if choice < 0.5:
            raw[i] = rng.randrange(256)
        elif choice < 0.75:
            del raw[i : i + rng.randint(1, 20)]
        else:
            raw[i:i] = rng.choice([b'"', b"{", b"[", b"\\", b"\xff", b"..", b"\x00", b"1e999"])
    return bytes(raw)


@pytest.mark.parametrize(
    ("template", "parse"),
    [(MANIFEST, _parse_manifest), (TOMBSTONE, _parse_manifest), (ALIAS, _parse_alias)],
    ids=["manifest", "tombstone", "alias"],
)
def test_fuzzed_records_parse_safely_or_are_refused(
    template: dict, parse: Any, report: Any
) -> None:
    rng = random.Random(1234)
    outcomes: dict[str, int] = {"accepted": 0, "refused": 0}
    unclear: list[str] = []
    for round_ in range(FUZZ_ROUNDS):
        if round_ % 3 == 0:
            data = _fuzz_bytes(rng, json.dumps(template).encode())
        else:
            mutated = template
            for _ in range(rng.randint(1, 3)):
                mutated = _mutate(rng, mutated)
            data = json.dumps(mutated).encode()
        try:
            parse(data)
            outcomes["accepted"] += 1
        except ModelshelfError as exc:
            one_line_error(exc)
            outcomes["refused"] += 1
        except Exception as exc:
            unclear.append(f"{type(exc).__name__}: {str(exc)[:80]} <- {data[:120]!r}")
    report(records=FUZZ_ROUNDS, unclear=len(unclear), **outcomes)
    assert unclear == []
    assert outcomes["refused"] > FUZZ_ROUNDS // 4  # the fuzzer really produced bad records


@pytest.mark.parametrize("parse", [_parse_manifest, _parse_alias], ids=["manifest", "alias"])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b'"x"',
        b"1",
        b"{",
        b"\xff\xfe{}",
        b"{}",
        b'{"schema": "1"}',
        b'{"schema": true}',
        b'{"schema": 0}',
        b'{"schema": 1e400}',
        b'{"schema": -1}',
        b'{"kind": "x"}',
        b'{"kind": ["version"]}',
        b'{"schema": 1, "kind": "version", "files": "abc"}',
        b'{"name": {"__class__": 1}}',
    ],
)
def test_malformed_records_are_refused(parse: Any, data: bytes) -> None:
    with pytest.raises(ModelshelfError) as caught:
        parse(data)
    one_line_error(caught.value)


@pytest.mark.parametrize("schema", [SCHEMA + 1, 99, 2**63])
def test_records_from_a_newer_schema_are_refused_with_upgrade_advice(schema: int) -> None:
    for template in (MANIFEST, ALIAS):
        data = json.dumps({**template, "schema": schema}).encode()
        with pytest.raises(SchemaTooNew, match="upgrade"):
            convert.manifest_from_json(
                data, source="x"
            ) if template is MANIFEST else convert.from_json(data, Alias, source="x")


def test_huge_records_are_refused_before_parsing() -> None:
    data = json.dumps({**MANIFEST, "metadata": {"blob": "x" * (17 << 20)}}).encode()
    with pytest.raises(InvalidRecord, match="limit"):
        convert.manifest_from_json(data, source="x")


@pytest.mark.parametrize(
    "parse",
    [_parse_manifest, _parse_alias, lambda d: convert.from_json(d, Event, source="x")],
    ids=["manifest", "alias", "event"],
)
def test_deeply_nested_records_are_refused(parse: Any) -> None:
    for data in (b"[" * 3000 + b"]" * 3000, b'{"metadata":' * 3000 + b"1" + b"}" * 3000):
        with pytest.raises(ModelshelfError):
            parse(data)


# --- end to end on a real shelf ------------------------------------------------------------


@pytest.fixture
def shelf_with_blob(tmp_path: Path) -> tuple[Any, bytes, str]:
    """A filesystem shelf holding one good version (``m:1``) and the content of its blob."""
    import modelshelf

    source = tmp_path / "src" / "model.bin"
    source.parent.mkdir()
    payload = b"hostile test payload\n"
    source.write_bytes(payload)
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    shelf.upload("m", source)
    return shelf, payload, hashlib.sha256(payload).hexdigest()


def _plant_manifest(shelf: Any, version: int, files: list[dict[str, Any]]) -> None:
    """Write a manifest straight to storage, as an attacker with write access to the bucket would."""
    record = json.loads(convert.to_json(shelf.get("m:1")))
    record.update(version=version, files=files, total_size=sum(f["size"] for f in files))
    shelf.storage.put_if_absent(
        f"models/m/_versions/{version:010d}.json", json.dumps(record).encode()
    )


def _snapshot(root: Path) -> dict[str, str]:
    return tree_digests(root) if root.exists() else {}


ESCAPES = [
    "../escaped.bin",
    "/tmp/escaped.bin",
    "C:/escaped.bin",
    "a/../../escaped.bin",
    "..\\escaped.bin",
    "C:escaped.bin",
    "sub/./../../escaped.bin",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_manifest_paths_that_escape_write_nothing(
    shelf_with_blob: Any, tmp_path: Path, path: str
) -> None:
    shelf, payload, sha = shelf_with_blob
    _plant_manifest(shelf, 2, [{"path": path, "sha256": sha, "size": len(payload)}])
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = outside / "dest"
    before = _snapshot(tmp_path / "src"), _snapshot(outside)
    with pytest.raises(ModelshelfError) as caught:
        shelf.download("m:2", dest)
    one_line_error(caught.value)
    assert isinstance(caught.value, InvalidRecord)
    assert (_snapshot(tmp_path / "src"), _snapshot(outside)) == before
    assert not Path("/tmp/escaped.bin").exists()
    assert (
        shelf.download("m:1", tmp_path / "good")
        and (tmp_path / "good" / "model.bin").read_bytes() == payload
    )
    # verify names the damaged version, and still checks the good one.
    problems = shelf.verify()
    assert [p.ref for p in problems] == ["m:2"] and "unreadable manifest" in problems[0].what


def test_symlinked_directory_in_destination_is_not_followed_out(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    shelf, payload, sha = shelf_with_blob
    _plant_manifest(shelf, 2, [{"path": "sub/model.bin", "sha256": sha, "size": len(payload)}])
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelshelfError) as caught:
        shelf.download("m:2", dest)
    one_line_error(caught.value)
    assert list(outside.iterdir()) == []


def test_symlinked_file_in_destination_is_replaced_not_written_through(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    shelf, payload, _ = shelf_with_blob
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.bin").symlink_to(victim)
    shelf.download("m:1", dest)
    assert victim.read_bytes() == b"precious"
    assert not (dest / "model.bin").is_symlink() and (dest / "model.bin").read_bytes() == payload


def test_symlinked_model_directory_on_the_shelf_is_ignored(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    """A symlink planted among models (pointing outside the shelf) is not listed as a model."""
    shelf, _, _ = shelf_with_blob
    elsewhere = tmp_path / "elsewhere" / "_versions"
    elsewhere.mkdir(parents=True)
    (elsewhere / "0000000001.json").write_bytes(convert.to_json(shelf.get("m:1")))
    (Path(shelf.storage.root) / "models" / "evil").symlink_to(
        elsewhere.parent, target_is_directory=True
    )
    assert shelf.models() == ["m"]


def test_newer_schema_manifest_refused_other_versions_fine(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    shelf, payload, _ = shelf_with_blob
    record = {
        **json.loads(convert.to_json(shelf.get("m:1"))),
        "version": 2,
        "schema": 7,
        "new_field": {"x": 1},
    }
    shelf.storage.put_if_absent("models/m/_versions/0000000002.json", json.dumps(record).encode())
    with pytest.raises(SchemaTooNew) as caught:
        shelf.get("m:2")
    one_line_error(caught.value)
    assert shelf.load("m:1").read_bytes() == payload
    assert [p.ref for p in shelf.verify()] == ["m:2"]


def test_names_that_escape_are_refused_before_any_io(shelf_with_blob: Any, tmp_path: Path) -> None:
    shelf, _, _ = shelf_with_blob
    before = _snapshot(Path(shelf.storage.root))
    source = tmp_path / "src" / "model.bin"
    for name in [
        "../x",
        "a/../../b",
        "/abs",
        "_versions",
        "m/_aliases",
        ".hidden",
        "a\\b",
        "C:x",
        "x" * 201,
        "",
        "a//b",
    ]:
        with pytest.raises(InvalidName) as caught:
            shelf.upload(name, source)
        one_line_error(caught.value)
        with pytest.raises(InvalidName):
            shelf.set_alias(name, "prod", 1)
        with pytest.raises(InvalidName):
            shelf.set_alias("m", name, 1)
    assert _snapshot(Path(shelf.storage.root)) == before


def test_upload_with_huge_metadata_is_refused_before_publishing(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    shelf, _, _ = shelf_with_blob
    with pytest.raises(ModelshelfError):
        shelf.upload("m", tmp_path / "src" / "model.bin", metadata={"blob": "x" * (17 << 20)})
    assert len(shelf.versions("m")) == 1


def test_upload_with_deeply_nested_metadata_is_refused_clearly(
    shelf_with_blob: Any, tmp_path: Path
) -> None:
    shelf, _, _ = shelf_with_blob
    deep: list[Any] = []
    cursor = deep
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    with pytest.raises(ModelshelfError):
        shelf.upload("m", tmp_path / "src" / "model.bin", metadata={"deep": deep})
