"""Models of every mapped framework, uploaded by real modelstore 0.0.82, import as loadable models.

Each case trains a small model, uploads it with modelstore's own manager for its library to a
filesystem registry, imports the registry, then loads the version in a fresh process (as a user
would, with only the plugins installed) and compares what it computes on fixed inputs with the
original's: forecasts, predictions, nearest neighbours, vectors. The cases are in
``modelstore_framework_cases.py``; a case is skipped only when its framework is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import modelshelf

# Installed by requirements/test.txt: a missing one fails here rather than skipping quietly.
import modelstore  # noqa: F401
import numpy as np
import pytest
from modelshelf.errors import FlaggedByScan, UntrustedFormat
from modelshelf_modelstore import MANAGERS, import_modelstore
from modelshelf_modelstore.managers import choose, planned_serializer
from modelshelf_modelstore.source import SourceModel

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import modelstore_framework_cases as cases  # noqa: E402


@attrs.frozen
class Case:
    library: str  # modelstore's manager name
    module: str  # what must be importable to train the model
    serializer: str
    safe: bool
    framework: str
    #: the files of the version a pickle would be read from (reported as unsafe)
    unsafe_files: tuple[str, ...] = ()
    #: the upload's pickle scan flags the files (as it does the serializer's own versions): loading
    #: then needs trust="ignore-scan"
    flagged_by_scan: bool = False


CASES = [
    Case("prophet", "prophet", "prophet-json", True, "prophet"),
    Case("gensim", "gensim", "gensim-native", False, "gensim", ("gensim.model",)),
    Case("annoy", "annoy", "annoy-native", True, "annoy"),
    Case("statsmodels", "statsmodels", "statsmodels-pickle", False, "statsmodels", ("model.pkl",)),
    Case("lightgbm", "lightgbm", "lightgbm-text", True, "lightgbm"),
    Case("catboost", "catboost", "catboost-cbm", True, "catboost"),
    Case("onnx", "onnx", "onnx-protobuf", True, "onnx"),
    Case("pytorch", "torch", "torch-pickle", False, "torch", ("checkpoint.pt", "model.pt")),
    Case("tensorflow", "tensorflow", "keras-v3", True, "keras"),
    Case(
        "pytorch_lightning",
        "pytorch_lightning",
        "lightning-checkpoint",
        False,
        "lightning",
        ("checkpoint.pt",),
    ),
    # fastai's export pickle calls getattr and builds pathlib paths, as in fastai-export's own versions
    Case(
        "fastai",
        "fastai",
        "fastai-export",
        False,
        "fastai",
        ("learner.pkl", "learner.pth"),
        flagged_by_scan=True,
    ),
]

#: Loads ``ref`` in a fresh process and saves what ``outputs_<library>`` computes on it.
LOADER = """
import sys
import numpy as np
import modelshelf
sys.path.insert(0, sys.argv[1])
import modelstore_framework_cases as cases
shelf_url, cache, ref, library, trust, out = sys.argv[2:]
with modelshelf.open(shelf_url, cache=cache) as shelf:
    trusted = {"trust": True, "no-trust": False}.get(trust, trust)
    model = shelf.load(ref, trust=trusted, **cases.load_options(library))
np.savez(out, **getattr(cases, "outputs_" + library)(model))
print(type(model).__name__)
"""


@pytest.fixture
def shelf(tmp_path: Path) -> Iterator[modelshelf.Shelf]:
    with modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache") as opened:
        yield opened


def _load_in_fresh_process(
    shelf_url: str, tmp_path: Path, ref: str, library: str, *, trust: str
) -> tuple[str, dict[str, np.ndarray]]:
    out = tmp_path / "loaded.npz"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(TESTS),
            shelf_url,
            str(tmp_path / "cache-fresh"),
            ref,
            library,
            trust,
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MODELSHELF_CACHE": str(tmp_path / "cache-fresh")},
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(out, allow_pickle=False) as loaded:
        return run.stdout.strip().splitlines()[-1], {k: loaded[k] for k in loaded.files}


def _run_in_own_process(node_id: str, tmp_path: Path, **env: str) -> None:
    """Run one test in a fresh pytest process with ``env``. Keras picks its backend once per
    process and the suite runs it on torch (plugins/keras), while modelstore's tensorflow manager
    takes only models built on TensorFlow."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", node_id, "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, **env, "MODELSHELF_CACHE": str(tmp_path / "own-process-cache")},
        check=False,
        timeout=900,
    )
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.library)
def test_model_uploaded_by_modelstore_loads_and_computes_identically(
    case: Case,
    tmp_path: Path,
    shelf: modelshelf.Shelf,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if importlib.util.find_spec(case.module) is None:
        pytest.skip(f"{case.module} is not installed")
    if (
        case.library == "tensorflow"
        and os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow"
    ):
        _run_in_own_process(request.node.nodeid, tmp_path, KERAS_BACKEND="tensorflow")
        return
    from modelstore import ModelStore

    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(
        workdir
    )  # modelstore and frameworks may drop files into the working directory
    model, upload_kwargs = getattr(cases, f"build_{case.library}")(workdir)
    expected = getattr(cases, f"outputs_{case.library}")(model)
    registry = tmp_path / "registry"
    ms = ModelStore.from_file_system(str(registry), create_directory=True)
    model_id = ms.upload("legacy", **upload_kwargs)["model"]["model_id"]

    plan = import_modelstore(str(registry), shelf, dry_run=True)
    assert [m.serializer for m in plan.imported] == [case.serializer]
    report = import_modelstore(str(registry), shelf)
    assert report.notes == ()
    (version,) = shelf.versions("legacy")
    assert version.metadata["modelstore"]["model_id"] == model_id
    assert version.metadata["modelstore"]["library"] == case.library
    assert version.serializer.name == case.serializer
    assert version.serializer.safe is case.safe
    assert version.framework is not None and version.framework.name == case.framework
    unsafe = version.metadata["modelstore"]["unsafe_files"]
    assert set(case.unsafe_files) <= set(unsafe), unsafe
    trust = "no-trust"
    if not case.safe:
        with pytest.raises(UntrustedFormat):
            shelf.load(version.ref)
        assert set(unsafe)  # the pickle the version loads from is reported
        trust = "trust"
    assert bool(version.scan and version.scan.dangerous) is case.flagged_by_scan
    if case.flagged_by_scan:
        with pytest.raises(FlaggedByScan):
            shelf.load(version.ref, trust=True)
        trust = "ignore-scan"

    loaded_type, outputs = _load_in_fresh_process(
        str(tmp_path / "shelf"), tmp_path, version.ref, case.library, trust=trust
    )
    assert loaded_type == type(model).__name__
    assert outputs.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(outputs[key], value, err_msg=key)


# --- the mapping alone (for frameworks the suite cannot train) ---------------------------------


def _source_model(library: str, model_type: str, **model_fields: Any) -> SourceModel:
    meta = {
        "model": {
            "domain": "legacy",
            "model_id": "m1",
            "model_type": {"library": library, "type": model_type},
            **model_fields,
        },
        "code": {"dependencies": {library: "0.15.1", "joblib": "1.4.2"}},
    }
    return SourceModel("m1", meta, None)


def test_causalml_learners_map_to_causalml_joblib(tmp_path: Path) -> None:
    """The row, checked against modelstore's file: registries written with a causalml whose
    learners only modelstore's causalml manager takes (see the next test for causalml 0.18)."""
    learner = tmp_path / "model.joblib"
    learner.write_bytes(b"\x80\x04N.")
    model = _source_model("causalml", "BaseTClassifier")
    assert planned_serializer(model) == ("causalml-joblib", None)
    choice = choose(model, {"model.joblib": learner, "model-info.json": tmp_path / "info"})
    assert choice.fallback is None
    assert choice.serializer.name == "causalml-joblib"
    assert choice.serializer.safe is False  # a joblib pickle, exactly as the serializer's own
    assert choice.serializer.details == {
        "file": "model.joblib",
        "class": "BaseTClassifier",
        "joblib_version": "1.4.2",
    }
    assert choice.framework is not None
    assert (choice.framework.name, choice.framework.version) == ("causalml", "0.15.1")
    # An archive without the learner's file stays files, with the reason.
    without = choose(model, {"model-info.json": tmp_path / "info"})
    assert without.serializer.name == "files"
    assert without.fallback is not None and "no model.joblib" in without.fallback


def test_annoy_without_dimensions_or_metric_stays_files(tmp_path: Path) -> None:
    """Reading an .ann file needs modelstore's num_dimensions and metric; without them: files."""
    files = {"model.ann": tmp_path / "model.ann"}
    for parameters in (
        {"metric": "angular"},
        {"num_dimensions": 8, "metric": "cosine"},
        {"num_dimensions": "8", "metric": "angular"},
    ):
        model = _source_model("annoy", "AnnoyIndex", parameters=parameters)
        serializer, why = planned_serializer(model)
        assert serializer == "files" and why is not None and "num_dimensions" in why
        choice = choose(model, files)
        assert choice.serializer.name == "files" and choice.fallback == why
    good = _source_model("annoy", "AnnoyIndex", parameters={"num_dimensions": 8, "metric": "dot"})
    details = choose(good, files).serializer.details
    assert (details["file"], details["f"], details["metric"]) == ("model.ann", 8, "dot")


def test_catboost_class_is_rebuilt_as_recorded(tmp_path: Path) -> None:
    files = {"model.cbm": tmp_path / "model.cbm"}
    regressor = choose(_source_model("catboost", "CatBoostRegressor"), files)
    assert regressor.serializer.details["restore_as"] == "catboost.core.CatBoostRegressor"
    unknown = choose(_source_model("catboost", "SomethingNewer"), files)
    assert unknown.serializer.details["restore_as"] == "catboost.core.CatBoost"


def test_every_mapped_serializer_is_installed_and_names_its_file() -> None:
    """Each row's serializer exists in this environment, and its details name the mapped file."""
    from modelshelf.plugins import get_registry

    serializers = get_registry().serializers()
    for library, mapping in MANAGERS.items():
        assert mapping.serializer in serializers, library
        details = mapping.details(
            _source_model(library, "X", parameters={"num_dimensions": 2, "metric": "angular"})
        )
        assert mapping.file in (details.get("file"), details.get("model_file")), library


def test_causalml_018_learner_archive_is_refused_with_the_reason(
    tmp_path: Path, shelf: modelshelf.Shelf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """causalml 0.18's learners are scikit-learn estimators too, so modelstore 0.0.82 saves one
    under both its causalml and its sklearn manager: two ``model.joblib`` members in one archive.
    Which one a user meant cannot be known, so nothing is imported and the report says why."""
    if importlib.util.find_spec("causalml") is None:
        pytest.skip("causalml is not installed")
    from causalml.inference.meta import BaseSRegressor
    from modelstore import ModelStore
    from sklearn.linear_model import LinearRegression

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 3))
    learner = BaseSRegressor(LinearRegression())
    learner.fit(features, treatment=rng.integers(0, 2, 60), y=rng.normal(size=60))
    registry = tmp_path / "registry"
    ModelStore.from_file_system(str(registry), create_directory=True).upload(
        "uplift", model=learner
    )

    report = import_modelstore(str(registry), shelf)
    assert report.imported == ()
    (skipped,) = report.skipped
    assert skipped.domain == "uplift"
    assert "'model.joblib' appears twice in the archive" in skipped.reason
    assert shelf.models() == []
