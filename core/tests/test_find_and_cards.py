"""``shelf.find`` and ``ls --where`` on a real shelf, and model cards (upload, read, show)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from modelshelf import finding, layout
from modelshelf.cards import CARD_PATH, MAX_CARD_BYTES, parse_card
from modelshelf.errors import IntegrityError, ModelNotFound, ModelshelfError
from modelshelf.query import QueryError
from modelshelf.shelf import Shelf


@pytest.fixture
def populated(local_shelf: Shelf, tmp_path: Path) -> Shelf:
    model = tmp_path / "weights.bin"
    model.write_bytes(b"w" * 64)
    specs = [
        ({"auc": 0.85}, {"data": "2026-10"}, {"C": 0.1}, {"owner": "ana"}),
        ({"auc": 0.92}, {"data": "2026-11"}, {"C": 1.0}, {"owner": "bo"}),
        (
            {"auc": 0.95},
            {"data": "2026-11"},
            {"C": 10.0},
            {"owner": "ana", "team": {"name": "risk"}},
        ),
        ({"auc": 0.91}, {"data": "2026-12"}, {"C": 1.0}, {}),
        ({}, {"data": "2026-11"}, {}, {}),
    ]
    for metrics, tags, params, metadata in specs:
        local_shelf.upload(
            "churn", model, metrics=metrics, tags=tags, params=params, metadata=metadata
        )
    local_shelf.set_alias("churn", "prod", 2)
    local_shelf.set_alias("churn", "staging", 3)
    return local_shelf


def numbers(versions: list) -> list[int]:  # type: ignore[type-arg]
    return [v.version for v in versions]


def test_find_filters_sorts_and_limits(populated: Shelf) -> None:
    assert numbers(populated.find("churn", "metrics.auc >= 0.9 and tags.data == '2026-11'")) == [
        2,
        3,
    ]
    assert numbers(populated.find("churn", "metrics.auc >= 0.9", order_by="-metrics.auc")) == [
        3,
        2,
        4,
    ]
    assert numbers(
        populated.find("churn", "metrics.auc >= 0.9", order_by="-metrics.auc", limit=1)
    ) == [3]
    assert numbers(populated.find("churn", order_by="-metrics.auc")) == [
        3,
        2,
        4,
        1,
        5,
    ]  # missing last
    assert numbers(populated.find("churn", order_by=["tags.data", "-version"])) == [1, 5, 3, 2, 4]
    assert numbers(populated.find("churn", "aliases contains 'prod'")) == [2]
    assert numbers(
        populated.find("churn", "not aliases contains 'prod' and aliases contains 'staging'")
    ) == [3]
    assert numbers(populated.find("churn", "metadata.owner == 'ana'")) == [1, 3]
    assert numbers(populated.find("churn", "metadata.team.name == 'risk'")) == [3]
    assert numbers(populated.find("churn", "params.C in [1, 10]")) == [2, 3, 4]
    assert numbers(populated.find("churn", "creator contains '@'")) == [1, 2, 3, 4, 5]
    assert numbers(
        populated.find("churn", "created_at >= '2000-01-01' and serializer == 'files'")
    ) == [1, 2, 3, 4, 5]
    assert numbers(populated.find("churn", "created_at < '2000-01-01'")) == []
    assert numbers(populated.find("churn", "metrics.auc exists", limit=0)) == []
    assert numbers(populated.find("churn", order_by="aliases")) == [2, 3, 1, 4, 5]


def test_find_errors(populated: Shelf) -> None:
    with pytest.raises(QueryError, match="expected a value after '>=' at column 16"):
        populated.find("churn", "metrics.auc >= ")
    with pytest.raises(ModelNotFound):
        populated.find("nope", "version > 0")
    with pytest.raises(ModelshelfError, match="limit"):
        populated.find("churn", limit=-1)


def test_find_follows_uploads_and_deletions(populated: Shelf, tmp_path: Path) -> None:
    assert numbers(populated.find("churn", "tags.data == '2026-11'")) == [2, 3, 5]
    populated.delete("churn:5")
    populated.upload(
        "churn", tmp_path / "weights.bin", tags={"data": "2026-11"}, metrics={"auc": 0.99}
    )
    assert numbers(populated.find("churn", "tags.data == '2026-11'")) == [2, 3, 6]
    populated.set_alias("churn", "prod", 6)
    assert numbers(populated.find("churn", "aliases contains 'prod'")) == [6]


def test_find_reads_only_the_answers_once_the_summary_is_warm(
    counting_shelf: Shelf, tmp_path: Path
) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"m")
    for auc in (0.5, 0.9, 0.7, 0.95):
        counting_shelf.upload("churn", model, metrics={"auc": auc})
    counting_shelf.find("churn", "metrics.auc > 0")  # builds the summary
    storage = counting_shelf.storage
    storage.calls.clear()  # type: ignore[attr-defined]
    assert numbers(
        counting_shelf.find("churn", "metrics.auc > 0.8", order_by="-metrics.auc", limit=1)
    ) == [4]
    reads = [key for method, key in storage.calls if method == "read"]  # type: ignore[attr-defined]
    assert reads == [layout.version_key("churn", 4)]


def test_a_doctored_summary_never_returns_a_version_that_does_not_match(populated: Shelf) -> None:
    populated.find("churn", "version > 0")
    catalog = populated.catalog
    summary = finding._load_summary(catalog, "churn")
    lying = {n: (etag, {**row, "metrics": {"auc": 0.99}}) for n, (etag, row) in summary.items()}
    finding._store_summary(catalog, "churn", lying)
    assert numbers(populated.find("churn", "metrics.auc > 0.98")) == []
    assert numbers(populated.find("churn", "metrics.auc > 0.94")) == [
        3
    ]  # the true answer is among them
    # A damaged summary is ignored and rebuilt.
    catalog.cache.put_record(
        catalog.url, finding._summary_key("churn"), f"format-{finding.SUMMARY_FORMAT}", b"{oops"
    )
    assert numbers(populated.find("churn", "metrics.auc > 0.94")) == [3]


def test_find_many_versions_summary_is_exact(local_shelf: Shelf, tmp_path: Path) -> None:
    """More changed versions than are read one by one: the listing path fills the summary."""
    import attrs
    from modelshelf import convert

    model = tmp_path / "m.bin"
    model.write_bytes(b"m")
    first = local_shelf.upload("big", model, metrics={"auc": 0.0})
    count = finding._READ_ONE_BY_ONE + 20
    for n in range(2, count + 1):
        record = attrs.evolve(
            first, version=n, metrics={"auc": n / count}, tags={"even": str(n % 2 == 0)}
        )
        local_shelf.storage.put_if_absent(layout.version_key("big", n), convert.to_json(record))
    found = local_shelf.find(
        "big", "metrics.auc >= 0.5 and tags.even == 'True'", order_by="-metrics.auc", limit=3
    )
    assert (
        numbers(found) == [count, count - 2, count - 4]
        if count % 2 == 0
        else [count - 1, count - 3, count - 5]
    )


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(populated: Shelf, modelshelf_cache: Path) -> dict[str, str]:
    return {"MODELSHELF_URL": populated.url, "MODELSHELF_CACHE": str(modelshelf_cache)}


def test_ls_where_sort_limit(run_cli, cli_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    out = run_cli(
        "ls",
        "churn",
        "--where",
        "metrics.auc >= 0.9 and tags.data == '2026-11'",
        "--sort",
        "-metrics.auc",
        "--limit",
        "5",
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["3", "2"]
    assert "@staging metrics.auc=0.95 data=2026-11" in lines[0]

    as_json = json.loads(
        run_cli("ls", "churn", "--where", "aliases contains 'prod'", "--json", env=cli_env).stdout
    )
    assert [v["version"] for v in as_json["versions"]] == [2]
    assert set(as_json["aliases"]) == {"prod", "staging"}

    table = run_cli("ls", "churn", "--sort", "version", "--format", "csv", env=cli_env).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [r["version"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert (
        rows[1]["metrics.auc"] == "0.92"
        and rows[1]["aliases"] == "prod"
        and rows[2]["metadata.team"] == '{"name": "risk"}'
    )
    assert rows[4]["metrics.auc"] == ""

    none = run_cli("ls", "churn", "--where", "version > 100", env=cli_env)
    assert (
        none.returncode == 0 and none.stdout == "" and "No version of churn matches" in none.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--where", "metrics.auc >= and tags.data == '2026-11'"],
            "Error: --where: expected a value after '>=' at column 16",
        ),
        (
            ["--where", "metrics.auc.__class__ == 1"],
            "Error: --where: names starting with '__' are not allowed",
        ),
        (
            ["--where", "__import__('os').system('touch /tmp/pwned')"],
            "Error: --where: names starting with '__'",
        ),
        (
            ["--where", "open('x') == 1"],
            "Error: --where: function calls are not allowed ('open(') at column 5",
        ),
        (
            ["--where", "(" * 200 + "version == 1" + ")" * 200],
            "Error: --where: expression nested deeper than 32 levels",
        ),
        (["--where", "version == 1 or " * 400 + "version == 2"], "Error: --where: expression is"),
        (
            ["--where", "version == 1 \x1b]0;owned\x07"],
            "Error: --where: unexpected character '\\x1b' at column 14",
        ),
        (["--sort", "-metrics.auc()"], "Error: --sort: function calls are not allowed"),
        (["--json", "--format", "csv"], "Error: --json and --format csv/text: choose one"),
    ],
)
def test_ls_bad_expressions_are_one_line_usage_errors(
    run_cli, cli_env: dict[str, str], args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("ls", "churn", *args, env=cli_env)
    assert out.returncode == 2
    assert out.stderr.startswith(message), out.stderr
    assert (
        out.stderr.count("\n") == 1 and "\x1b" not in out.stderr and "Traceback" not in out.stderr
    )
    assert out.stdout == ""


def test_ls_where_needs_a_name(run_cli, cli_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("ls", "--where", "version > 1", env=cli_env)
    assert out.returncode == 2 and "give NAME" in out.stderr


# --- model cards -------------------------------------------------------------------------------------

CARD = """---
license: apache-2.0
language:
  - en
tags: [churn, tabular]
datasets:
- crm-2026-11
model-index:
  - name: churn
    results:
      - task: {type: tabular-classification}
base_model: "none"  # a comment
---
# Churn model

<!-- generated from the template -->
Gradient boosting on the November CRM extract.
It predicts churn within 30 days.

## Uses
\tIndented with a tab.
"""


def test_parse_card_front_matter_and_summary() -> None:
    card = parse_card(CARD.replace("\n", "\r\n"))
    assert card.front_matter == {
        "license": "apache-2.0",
        "language": ["en"],
        "tags": ["churn", "tabular"],
        "datasets": ["crm-2026-11"],
        "base_model": "none",
    }
    assert card.title == "Churn model"
    assert (
        card.summary
        == "Gradient boosting on the November CRM extract. It predicts churn within 30 days."
    )
    assert "\r" not in card.text
    plain = parse_card("Just text.\n\nMore.")
    assert plain.front_matter == {} and plain.summary == "Just text." and plain.title is None
    unclosed = parse_card("---\nlicense: mit\nno end")
    assert unclosed.front_matter == {} and unclosed.body.startswith("---")


def test_upload_with_card_and_read_it_back(
    local_shelf: Shelf, tmp_path: Path, model_file: Path
) -> None:
    card_file = tmp_path / "README.md"
    card_file.write_text(CARD)
    version = local_shelf.upload("churn", model_file, card=card_file)
    assert [f.path for f in version.files] == [CARD_PATH, "model.bin"]
    card = local_shelf.card("churn:1")
    assert card is not None and card.text == CARD and card.front_matter["license"] == "apache-2.0"
    assert local_shelf.card("churn") is not None
    assert local_shelf.find("churn", "card == true")[0].version == 1
    local_shelf.upload("churn", model_file)
    assert local_shelf.card("churn:2") is None
    assert [v.version for v in local_shelf.find("churn", "card == false")] == [2]
    # The model itself loads as before: the card is one more file beside it.
    assert Path(local_shelf.load("churn:1")).read_bytes() == model_file.read_bytes()
    downloaded = local_shelf.download("churn:1", tmp_path / "out")
    assert (downloaded / CARD_PATH).read_text() == CARD


def test_card_is_verified(local_shelf: Shelf, tmp_path: Path, model_file: Path) -> None:
    card_file = tmp_path / "README.md"
    card_file.write_text("# Card\n\nHello.")
    version = local_shelf.upload("churn", model_file, card=card_file)
    entry = next(f for f in version.files if f.path == CARD_PATH)
    blob = Path(local_shelf.url.removeprefix("file://")) / layout.blob_key(entry.sha256)
    blob.chmod(0o644)
    blob.write_text("# Card\n\nEvil!")
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        local_shelf.card("churn:1")


def test_bad_cards_are_refused_before_upload(
    local_shelf: Shelf, tmp_path: Path, model_file: Path
) -> None:
    with pytest.raises(ModelshelfError, match="is not a file"):
        local_shelf.upload("churn", model_file, card=tmp_path / "missing.md")
    binary = tmp_path / "card.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelshelfError, match="not UTF-8"):
        local_shelf.upload("churn", model_file, card=binary)
    huge = tmp_path / "huge.md"
    huge.write_bytes(b"a" * (MAX_CARD_BYTES + 1))
    with pytest.raises(ModelshelfError, match="at most"):
        local_shelf.upload("churn", model_file, card=huge)
    clash = tmp_path / "model"
    (clash / "card").mkdir(parents=True)
    (clash / "card" / "README.md").write_text("mine")
    card_file = tmp_path / "README.md"
    card_file.write_text("card")
    with pytest.raises(ModelshelfError, match="already has a file 'card/README.md'"):
        local_shelf.upload("churn", clash, card=card_file)
    with pytest.raises(ModelNotFound):
        local_shelf.get("churn")


def test_cli_card_upload_info_and_card(run_cli, tmp_path: Path, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"MODELSHELF_URL": str(tmp_path / "shelf"), "MODELSHELF_CACHE": str(tmp_path / "cache")}
    card_file = tmp_path / "README.md"
    hostile = CARD.replace("Gradient boosting", "Gradient \x1b]0;pwned\x07boosting").replace(
        "license: apache-2.0", "license: apache-2.0\x1b[2J"
    )
    card_file.write_text(hostile)
    up = run_cli(
        "upload", "churn", str(model_file), "--card", str(card_file), "--alias", "prod", env=env
    )
    assert up.returncode == 0, up.stderr

    info = run_cli("info", "churn@prod", env=env)
    assert info.returncode == 0, info.stderr
    assert "card: 'Churn model' (`modelshelf card churn:1` shows it)" in info.stdout
    assert "    license: apache-2.0\\x1b[2J" in info.stdout
    assert "    tags: churn, tabular" in info.stdout
    assert (
        "    Gradient \\x1b]0;pwned\\x07boosting on the November CRM extract. It predicts churn"
        in info.stdout
    )
    assert "\x1b" not in info.stdout

    shown = run_cli("card", "churn@prod", env=env)
    assert shown.returncode == 0
    assert "\x1b" not in shown.stdout and "\\x1b]0;pwned\\x07" in shown.stdout
    assert "\tIndented with a tab." in shown.stdout and "# Churn model\n" in shown.stdout

    exact = json.loads(run_cli("card", "churn", "--json", env=env).stdout)
    assert exact["text"] == hostile and exact["front_matter"]["tags"] == ["churn", "tabular"]

    assert run_cli("upload", "churn", str(model_file), env=env).returncode == 0
    missing = run_cli("card", "churn:2", env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: churn:2 has no model card")
    bad = run_cli("upload", "churn", str(model_file), "--card", str(tmp_path / "nope.md"), env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
