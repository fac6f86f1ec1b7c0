"""Importing a real modelstore 0.0.82 registry into a shelf (``modelshelf import-modelstore``).

Every registry here is written by the real ``modelstore`` package with real scikit-learn models;
the import reads it back only through modelshelf's storage plugins (the filesystem one, and the S3
one against a real moto server over HTTP). The command line runs as users run it, in a fresh
process, so the command also proves this plugin is found through its entry point.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import modelshelf
import modelshelf_sklearn  # noqa: F401

# Installed by requirements/test.txt: a missing one fails here rather than skipping quietly.
import modelstore  # noqa: F401
import numpy as np
import pytest
import sklearn  # noqa: F401
from modelshelf.errors import NotFound, UntrustedFormat
from modelshelf_modelstore import (
    MANAGERS,
    ManagerMapping,
    SkippedItem,
    extract_archive,
    import_modelstore,
    public_location,
)

X_TEST = np.random.RandomState(99).rand(12, 4)


@attrs.define
class Registry:
    """A modelstore registry on disk and what the test put in it, in upload order."""

    root: Path
    #: domain -> [(model_id, predict_proba on X_TEST)] in creation order (live models only)
    models: dict[str, list[tuple[str, np.ndarray]]]
    #: domain -> state -> model id of the newest model in that state
    states: dict[str, dict[str, str]]
    deleted: list[tuple[str, str]]
    extra_metadata: dict[str, Any]
    with_extra_file: str
    raw_file_id: str


def _fit(seed: int, kind: str = "logistic") -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.RandomState(seed)
    x = rng.rand(40, 4)
    y = (x[:, 0] + rng.rand(40) * 0.3 > 0.6).astype(int)
    model = (
        LogisticRegression(C=0.5 + seed)
        if kind == "logistic"
        else DecisionTreeClassifier(max_depth=3, random_state=seed)
    )
    return model.fit(x, y)


def _store(root: Path) -> Any:
    from modelstore import ModelStore

    return ModelStore.from_file_system(str(root), create_directory=True)


def _upload(ms: Any, domain: str, model: Any, **kwargs: Any) -> str:
    return ms.upload(domain, model=model, **kwargs)["model"]["model_id"]


def build_registry(ms: Any, workdir: Path, root: Path, *, pause: float = 0.0) -> Registry:
    """Fill a modelstore registry: three domains, states, an extra file, a deleted model...

    ``pause`` seconds between rounds of uploads: on S3 modelstore's creation times and the
    objects' modification times both have one-second resolution, so the true order of models
    uploaded within one second is unknowable (modelshelf reports it as a note).
    """
    models: dict[str, list[tuple[str, np.ndarray]]] = {"churn": [], "fraud": []}
    notes = workdir / "notes.txt"
    notes.write_text("trained on the March data\n")
    extra = {"team": "growth", "auc": 0.91}
    churn_ids: list[str] = []
    fraud_ids: list[str] = []
    fraud_models = [_fit(10 + seed, "tree") for seed in range(3)]
    for seed in range(3):
        if seed and pause:
            time.sleep(pause)
        model = _fit(seed)
        kwargs: dict[str, Any] = {}
        if seed == 1:
            kwargs = {"extra_files": [str(notes)], "extra_metadata": extra}
        churn_ids.append(_upload(ms, "churn", model, **kwargs))
        models["churn"].append((churn_ids[-1], model.predict_proba(X_TEST)))
        fraud_ids.append(_upload(ms, "fraud", fraud_models[seed]))
    for state in ("production", "staging", "archived", "123"):
        ms.create_model_state(state)
    ms.set_model_state("churn", churn_ids[0], "production")
    ms.set_model_state("churn", churn_ids[1], "production")  # newest in production: churn_ids[1]
    ms.set_model_state("churn", churn_ids[2], "staging")
    ms.set_model_state("churn", churn_ids[2], "123")  # valid state in modelstore, not as an alias
    ms.set_model_state("fraud", fraud_ids[2], "production")
    ms.delete_model("fraud", fraud_ids[1], skip_prompt=True)
    for model_id, model in zip(fraud_ids, fraud_models, strict=True):
        if model_id != fraud_ids[1]:
            models["fraud"].append((model_id, model.predict_proba(X_TEST)))
    # A framework modelstore only knows as a file: a pickle, which must never be executed.
    raw = workdir / "model.pkl"
    raw.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    raw_id = _upload(ms, "raw-files", str(raw))
    # A domain name modelshelf cannot use.
    _upload(ms, "bad domain", _fit(7))
    return Registry(
        root=root,
        models=models,
        states={
            "churn": {"production": churn_ids[1], "staging": churn_ids[2]},
            "fraud": {"production": fraud_ids[2]},
        },
        deleted=[("fraud", fraud_ids[1])],
        extra_metadata=extra,
        with_extra_file=churn_ids[1],
        raw_file_id=raw_id,
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One filesystem modelstore registry for the module (read-only for the tests)."""
    workdir = tmp_path_factory.mktemp("modelstore-work")
    root = tmp_path_factory.mktemp("modelstore") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)  # modelstore and frameworks may drop files into the working directory
        yield build_registry(_store(root), workdir, root)


@pytest.fixture
def shelf(tmp_path: Path) -> Iterator[modelshelf.Shelf]:
    with modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache") as opened:
        yield opened


def _files_below(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def _check_imported(registry: Registry, shelf: modelshelf.Shelf) -> None:
    """Every live sklearn model loads with identical predictions, in creation order."""
    for domain, expected in registry.models.items():
        versions = shelf.versions(domain)
        assert [v.metadata["modelstore"]["model_id"] for v in versions] == [m for m, _ in expected]
        assert [v.version for v in versions] == list(range(1, len(expected) + 1))
        for version, (_, probabilities) in zip(versions, expected, strict=True):
            assert version.serializer.name == "sklearn-joblib"
            assert version.serializer.safe is False
            loaded = shelf.load(version.ref, trust=True)
            np.testing.assert_array_equal(loaded.predict_proba(X_TEST), probabilities)
            with pytest.raises(UntrustedFormat):
                shelf.load(version.ref)
    for domain, states in registry.states.items():
        numbers = {v.metadata["modelstore"]["model_id"]: v.version for v in shelf.versions(domain)}
        aliases = {a: rec.version for a, rec in shelf.aliases(domain).items()}
        assert aliases == {state: numbers[model_id] for state, model_id in states.items()}


# --- the filesystem registry -------------------------------------------------------------------


def test_import_loads_every_model_with_identical_predictions(
    registry: Registry, shelf: modelshelf.Shelf
) -> None:
    report = import_modelstore(str(registry.root), shelf)
    _check_imported(registry, shelf)
    assert report.notes == ()  # file modification times (ns) order same-second models for sure
    assert shelf.models() == ["churn", "fraud", "raw-files"]
    assert {d: list(ids) for d, ids in report.refs().items() if d in registry.models} == {
        d: [m for m, _ in models] for d, models in registry.models.items()
    }
    assert report.states() == {
        "churn": {"production": "churn@production", "staging": "churn@staging"},
        "fraud": {"production": "fraud@production"},
    }
    # Loading through the alias gives the newest model in that modelstore state.
    production = dict(registry.models["churn"])[registry.states["churn"]["production"]]
    np.testing.assert_array_equal(
        shelf.load("churn@production", trust=True).predict_proba(X_TEST), production
    )


def test_metadata_keeps_model_ids_extra_files_and_lineage(
    registry: Registry, shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    import_modelstore(str(registry.root), shelf)
    for domain, expected in registry.models.items():
        for version, (model_id, _) in zip(shelf.versions(domain), expected, strict=True):
            record = version.metadata["modelstore"]
            assert record["model_id"] == model_id
            assert record["domain"] == domain
            assert (
                record["metadata"]["model"]["model_id"] == model_id
            )  # the whole modelstore metadata
            assert record["unsafe_files"] == ["model.joblib"]
            assert version.lineage.source == {
                "kind": "modelstore",
                "location": str(registry.root),
                "domain": domain,
                "model_id": model_id,
            }
            assert version.framework is not None and version.framework.name == "sklearn"
    with_extra = next(
        v
        for v in shelf.versions("churn")
        if v.metadata["modelstore"]["model_id"] == registry.with_extra_file
    )
    assert with_extra.metadata["modelstore"]["metadata"]["extra"] == registry.extra_metadata
    assert with_extra.params["C"] == 1.5  # modelstore's recorded parameters become params
    paths = {f.path for f in with_extra.files}
    assert paths == {"model.joblib", "model-info.json", "extras/notes.txt"}
    target = shelf.download(with_extra.ref, tmp_path / "dl", link=False)
    assert (target / "extras" / "notes.txt").read_text() == "trained on the March data\n"
    assert with_extra.metadata["modelstore"]["states"] == ["production"]


def test_skips_deleted_models_invalid_domains_and_invalid_states(
    registry: Registry, shelf: modelshelf.Shelf
) -> None:
    report = import_modelstore(str(registry.root), shelf)
    skipped = {(s.kind, s.domain, s.item): s.reason for s in report.skipped}
    for domain, model_id in registry.deleted:
        assert "deleted in modelstore" in skipped[("model", domain, model_id)]
        assert model_id not in {
            v.metadata["modelstore"]["model_id"] for v in shelf.versions(domain)
        }
    assert "not a valid modelshelf model name" in skipped[("domain", "bad domain", "bad domain")]
    assert "not a valid alias" in skipped[("state", "churn", "123")]
    assert "bad domain" not in shelf.models()
    # Nothing of the skipped domain was written anywhere in the shelf.
    assert not any("bad domain" in p for p in _files_below(Path(shelf.storage.root)))  # type: ignore[attr-defined]
    assert "123" not in shelf.aliases("churn")
    assert "archived" not in shelf.aliases("churn")  # a state with no model in this domain


def test_other_frameworks_import_as_files_with_pickles_marked_unsafe(
    registry: Registry, shelf: modelshelf.Shelf
) -> None:
    report = import_modelstore(str(registry.root), shelf)
    (raw,) = shelf.versions("raw-files")
    assert raw.serializer.name == "files"
    assert raw.metadata["modelstore"]["model_id"] == registry.raw_file_id
    assert raw.metadata["modelstore"]["unsafe_files"] == ["model.pkl"]
    assert next(m for m in report.imported if m.domain == "raw-files").unsafe_files == (
        "model.pkl",
    )
    # The files serializer hands back paths; nothing is unpickled.
    folder = shelf.load(raw.ref)
    assert isinstance(folder, Path)
    assert pickle.loads((folder / "model.pkl").read_bytes()) == {"weights": [1.0, 2.0]}


def test_second_import_imports_nothing_and_a_later_one_only_what_is_new(
    registry: Registry, tmp_path: Path, shelf: modelshelf.Shelf, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "copy"
    shutil.copytree(registry.root, source)
    import_modelstore(str(source), shelf)
    before = _files_below(Path(shelf.storage.root))  # type: ignore[attr-defined]

    again = import_modelstore(str(source), shelf)
    assert again.imported == ()
    assert all(not a.changed for a in again.aliases)
    assert _files_below(Path(shelf.storage.root)) == before  # type: ignore[attr-defined]

    # The team keeps using modelstore: one more model, promoted to production.
    monkeypatch.chdir(tmp_path)
    ms = _store(source)
    newer = _fit(42)
    new_id = _upload(ms, "churn", newer)
    ms.set_model_state("churn", new_id, "production")
    third = import_modelstore(str(source), shelf)
    assert [(m.domain, m.model_id, m.ref) for m in third.imported] == [("churn", new_id, "churn:4")]
    (change,) = [a for a in third.aliases if a.changed]
    assert (change.alias, change.ref, change.previous) == ("production", "churn:4", 2)
    np.testing.assert_array_equal(
        shelf.load("churn@production", trust=True).predict_proba(X_TEST),
        newer.predict_proba(X_TEST),
    )


def test_dry_run_writes_nothing(
    registry: Registry, tmp_path: Path, shelf: modelshelf.Shelf
) -> None:
    shelf_root = Path(shelf.storage.root)  # type: ignore[attr-defined]
    source_before = {p: p.stat().st_mtime_ns for p in registry.root.rglob("*")}
    plan = import_modelstore(str(registry.root), shelf, dry_run=True)
    assert not shelf_root.exists()
    assert {p: p.stat().st_mtime_ns for p in registry.root.rglob("*")} == source_before
    assert plan.dry_run
    assert any(line.startswith("would import churn:1 <- churn/") for line in plan.lines())

    done = import_modelstore(str(registry.root), shelf)
    # The plan predicted exactly what the import then did.
    assert plan.refs() == done.refs()
    assert [(a.name, a.alias, a.ref) for a in plan.aliases] == [
        (a.name, a.alias, a.ref) for a in done.aliases
    ]
    assert {
        p: p.stat().st_mtime_ns for p in registry.root.rglob("*")
    } == source_before  # source untouched

    # A dry run on an already imported shelf plans nothing and still writes nothing.
    before = _files_below(shelf_root)
    replan = import_modelstore(str(registry.root), shelf, dry_run=True)
    assert replan.imported == () and all(not a.changed for a in replan.aliases)
    assert _files_below(shelf_root) == before


def test_source_may_be_the_modelstore_folder_itself(
    registry: Registry, shelf: modelshelf.Shelf
) -> None:
    report = import_modelstore(f"file://{registry.root / 'operatorai-model-store'}", shelf)
    assert set(report.refs()) == {"churn", "fraud", "raw-files"}
    _check_imported(registry, shelf)


def test_not_a_modelstore_registry_is_a_clear_error(
    tmp_path: Path, shelf: modelshelf.Shelf
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        NotFound, match=r"no modelstore registry at .*operatorai-model-store/domains/"
    ):
        import_modelstore(str(tmp_path / "empty"), shelf)
    with pytest.raises(modelshelf.errors.UnknownScheme, match="no storage plugin reads ftp://"):
        import_modelstore("ftp://host/models", shelf)


def test_public_location_drops_credentials() -> None:
    assert (
        public_location("s3://KEY:SECRET@bucket/prefix?endpoint_url=http://x&token=t")
        == "s3://bucket/prefix"
    )
    assert public_location("/srv/models") == "/srv/models"


# --- the command line --------------------------------------------------------------------------


def _modelshelf(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``modelshelf ARGS`` in a fresh process, as a user runs it."""
    full_env = {**os.environ, "MODELSHELF_CACHE": str(tmp_path / "cache"), **env}
    full_env.pop("MODELSHELF_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
        timeout=300,
    )


def test_cli_import_dry_run_and_json(registry: Registry, tmp_path: Path) -> None:
    url = str(tmp_path / "cli-shelf")
    dry = _modelshelf(
        "--shelf",
        url,
        "import-modelstore",
        "--from",
        str(registry.root),
        "--dry-run",
        tmp_path=tmp_path,
    )
    assert dry.returncode == 0, dry.stderr
    assert "would import churn:1 <- churn/" in dry.stdout
    assert "(dry run: nothing written)" in dry.stdout
    assert not Path(url).exists()

    done = _modelshelf(
        "--shelf",
        url,
        "import-modelstore",
        "--from",
        str(registry.root),
        "--json",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [m["model_id"] for m in data["imported"] if m["domain"] == "churn"] == [
        m for m, _ in registry.models["churn"]
    ]
    assert data["dry_run"] is False

    again = _modelshelf(
        "--shelf", url, "import-modelstore", "--from", str(registry.root), tmp_path=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert "0 model(s) imported, 0 alias(es) set" in again.stdout
    assert "already imported as churn:1" in again.stdout

    missing = _modelshelf(
        "--shelf", url, "import-modelstore", "--from", str(tmp_path / "nope"), tmp_path=tmp_path
    )
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "no modelstore registry" in missing.stderr


def test_command_is_listed_and_the_plugin_reported(tmp_path: Path) -> None:
    helped = _modelshelf("--help", tmp_path=tmp_path)
    assert helped.returncode == 0 and "import-modelstore" in helped.stdout
    listed = _modelshelf("plugins", tmp_path=tmp_path)
    assert "modelstore  (modelshelf-modelstore " in listed.stdout
    assert "hooks: modelshelf_register_commands" in listed.stdout
    blocked = _modelshelf(
        "import-modelstore", "--help", tmp_path=tmp_path, MODELSHELF_DISABLE_PLUGINS="modelstore"
    )
    assert blocked.returncode == 2  # no such command without the plugin


def test_import_module_does_not_import_modelstore() -> None:
    code = (
        "import modelshelf_modelstore, sys; "
        "assert not {'modelstore', 'boto3', 'sklearn', 'numpy'} & {m.split('.')[0] for m in sys.modules}"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- serializers: found by name in the plugin registry, with plain files as the fallback --------


def test_without_the_serializer_plugin_models_are_files_with_a_note(
    registry: Registry, shelf: modelshelf.Shelf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manager whose serializer no installed plugin provides: files, and the report says why."""
    missing = attrs.evolve(MANAGERS["sklearn"], serializer="sklearn-not-installed")
    monkeypatch.setitem(MANAGERS, "sklearn", missing)
    plan = import_modelstore(str(registry.root), shelf, dry_run=True)
    assert {m.serializer for m in plan.imported} == {"files"}
    report = import_modelstore(str(registry.root), shelf)
    churn = shelf.versions("churn")
    assert {v.serializer.name for v in churn} == {"files"} and all(
        v.framework is None for v in churn
    )
    assert isinstance(shelf.load(churn[0].ref), Path)  # the directory; nothing unpickled
    for result in (plan, report):
        (note,) = [n for n in result.notes if n.startswith("churn: ")]
        assert "3 sklearn model(s)" in note and "as plain files" in note
        assert (
            "'sklearn-not-installed' is not installed (install it with `pip install modelshelf-sklearn`)"
            in note
        )
        assert any(line == f"note: {note}" for line in result.lines())


def test_a_blocked_serializer_plugin_is_named_in_the_note(
    registry: Registry, tmp_path: Path
) -> None:
    url = str(tmp_path / "cli-shelf")
    run = _modelshelf(
        "--shelf",
        url,
        "import-modelstore",
        "--from",
        str(registry.root),
        "--dry-run",
        tmp_path=tmp_path,
        MODELSHELF_DISABLE_PLUGINS="sklearn",
    )
    assert run.returncode == 0, run.stderr
    assert "would import churn:1 <- churn/" in run.stdout and "(files)" in run.stdout
    assert "note: churn: 3 sklearn model(s) would be imported as plain files" in run.stdout
    assert "sklearn-joblib" in run.stdout and "modelshelf-sklearn" in run.stdout


def test_every_manager_mapping_is_well_formed() -> None:
    for library, mapping in MANAGERS.items():
        assert isinstance(mapping, ManagerMapping) and mapping.library == library
        assert mapping.file and "/" not in mapping.file
        assert mapping.serializer != "files"


# --- hostile archives --------------------------------------------------------------------------


def _hostile_archive(path: Path, outside: Path, good_model: bytes | None = None) -> None:
    """An artifacts.tar.gz that tries every escape, plus (optionally) a real model.joblib."""

    def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: Any) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        for key, value in fields.items():
            setattr(info, key, value)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(path, "w:gz") as tar:
        if good_model is not None:
            add(tar, "model.joblib", good_model)
        add(tar, "../x", b"escaped by ..")
        add(tar, "sub/../../x2", b"escaped by a nested ..")
        add(tar, str(outside / "absolute.txt"), b"escaped by an absolute path")
        add(tar, "link", type=tarfile.SYMTYPE, linkname=str(outside))
        add(tar, "link/through-link.txt", b"escaped through a symlink")
        add(tar, "hard", type=tarfile.LNKTYPE, linkname=str(outside / "target.txt"))
        add(tar, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add(tar, "fine/ok.txt", b"a normal file")
        add(tar, "fine/ok.txt/nested", b"a file below a file")


def test_extract_archive_refuses_every_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("original")
    archive = tmp_path / "hostile.tar.gz"
    _hostile_archive(archive, outside)
    dest = tmp_path / "area" / "dest"
    files, refused = extract_archive(archive, dest)
    # The symlink member is never created, so "link/through-link.txt" lands in a real folder
    # inside dest instead of following the link.
    assert set(files) == {"fine/ok.txt", "link/through-link.txt"}
    assert not (dest / "link").is_symlink()
    assert len(refused) == 7, refused
    assert any("'fine/ok.txt/nested' cannot be created" in r for r in refused)
    assert _files_below(outside) == {"target.txt"}
    assert (outside / "target.txt").read_text() == "original"
    assert _files_below(tmp_path / "area") == {
        "dest",
        "dest/fine",
        "dest/fine/ok.txt",
        "dest/link",
        "dest/link/through-link.txt",
    }
    assert not (tmp_path / "x").exists() and not (tmp_path / "area" / "x").exists()


def test_hostile_modelstore_archive_writes_nothing_outside(
    registry: Registry, tmp_path: Path, shelf: modelshelf.Shelf, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "copy"
    shutil.copytree(registry.root, source)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("original")
    victim_id = registry.models["churn"][0][0]
    (archive,) = source.glob(f"operatorai-model-store/churn/*/{victim_id}/artifacts.tar.gz")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("model.joblib")
        assert member is not None
        good = member.read()
    _hostile_archive(archive, outside, good)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the import's temp dirs go here

    report = import_modelstore(str(source), shelf)

    (skip,) = [s for s in report.skipped if s.item == victim_id]
    assert isinstance(skip, SkippedItem) and "unsafe archive" in skip.reason
    for what in ("'../x'", "absolute path", "symbolic link", "hard link", "not a regular file"):
        assert what in skip.reason
    assert victim_id not in {v.metadata["modelstore"]["model_id"] for v in shelf.versions("churn")}
    assert (
        _files_below(outside) == {"target.txt"}
        and (outside / "target.txt").read_text() == "original"
    )
    assert _files_below(scratch) == set()  # temp dirs are gone, nothing was left beside them
    for name in ("x", "x2", "absolute.txt", "through-link.txt"):
        assert not list(tmp_path.rglob(name)), name
    # The other models still import; production now points at the newest model in that state.
    assert [v.metadata["modelstore"]["model_id"] for v in shelf.versions("churn")] == [
        m for m, _ in registry.models["churn"][1:]
    ]
    assert shelf.aliases("churn")["production"].version == 1


# --- S3 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real moto S3 server over HTTP; boto3 (modelstore's and the S3 plugin's) points at it."""
    from modelshelf_s3.testing import moto_environment

    with moto_environment() as endpoint:
        yield endpoint


def test_import_from_s3_written_by_modelstore(
    moto_endpoint: str, tmp_path: Path, shelf: modelshelf.Shelf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """modelstore's own S3 backend writes the registry (through AWS_ENDPOINT_URL, to moto)."""
    import boto3
    from modelstore import ModelStore

    boto3.client("s3").create_bucket(Bucket="legacy-models")
    monkeypatch.chdir(tmp_path)
    ms = ModelStore.from_aws_s3("legacy-models", root_prefix="team/ml")
    registry = build_registry(ms, tmp_path, tmp_path, pause=1.05)
    keys = [
        o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="legacy-models")["Contents"]
    ]
    assert all(k.startswith("team/ml/operatorai-model-store/") for k in keys)

    report = import_modelstore("s3://legacy-models/team/ml", shelf)
    _check_imported(registry, shelf)
    assert report.notes == ()
    assert {(s.kind, s.item) for s in report.skipped} >= {
        ("domain", "bad domain"),
        ("state", "123"),
    }
    version = shelf.versions("churn")[0]
    assert version.lineage.source is not None
    assert version.lineage.source["location"] == "s3://legacy-models/team/ml"
    assert import_modelstore("s3://legacy-models/team/ml", shelf).imported == ()


def test_models_with_indistinguishable_times_are_reported(
    registry: Registry, tmp_path: Path, shelf: modelshelf.Shelf
) -> None:
    """Same second and same metadata mtime: the order is a guess, said so; the latest stays last."""
    source = tmp_path / "copy"
    shutil.copytree(registry.root, source)
    versions = source / "operatorai-model-store" / "churn" / "versions"
    churn_ids = [m for m, _ in registry.models["churn"]]
    for model_id in churn_ids:
        info = versions / f"{model_id}.json"
        meta = json.loads(info.read_text())
        meta["code"]["created"] = "2024/01/02/03:04:05"
        info.write_text(json.dumps(meta))
        os.utime(info, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    report = import_modelstore(str(source), shelf)
    (note,) = report.notes
    assert note.startswith("churn: models ") and all(m in note for m in churn_ids)
    assert any(line == f"note: {note}" for line in report.lines())
    order = [v.metadata["modelstore"]["model_id"] for v in shelf.versions("churn")]
    assert sorted(order) == sorted(churn_ids)
    assert order[-1] == churn_ids[-1]  # domains/churn.json names the last upload


def test_missing_archive_skips_the_model_and_the_state_it_heads(
    registry: Registry, tmp_path: Path, shelf: modelshelf.Shelf
) -> None:
    source = tmp_path / "copy"
    shutil.copytree(registry.root, source)
    newest = registry.states["fraud"]["production"]
    (archive,) = source.glob(f"operatorai-model-store/fraud/*/{newest}/artifacts.tar.gz")
    archive.unlink()
    report = import_modelstore(str(source), shelf)
    skipped = {(s.kind, s.domain, s.item): s.reason for s in report.skipped}
    assert skipped[("model", "fraud", newest)].startswith(
        "no artifacts.tar.gz found for it (modelstore recorded /"
    )
    assert "was not imported" in skipped[("state", "fraud", "production")]
    assert "production" not in shelf.aliases("fraud")
    assert len(shelf.versions("fraud")) == len(registry.models["fraud"]) - 1
