"""modelshelf-causalml against real CausalML learners, through a real filesystem shelf."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf_causalml import CausalMLSerializer

MakeLearner = Callable[[str], Any]
Predict = Callable[[Any, np.ndarray], np.ndarray]


class WritesMarker:
    """Unpickling this object creates the file ``path`` (a stand-in for arbitrary code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "x"))


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def _load_trusting_the_payload(shelf: Any, ref: str, marker: Path) -> None:
    """Load with trust, as far as the payload runs. Where core scans pickles at upload, the scan
    flags the payload's import of ``builtins.open`` and ``trust=True`` still refuses (nothing runs);
    ``trust="ignore-scan"`` then runs it."""
    try:
        shelf.load(ref, trust=True)
    except UntrustedFormat:
        assert not marker.exists()
        with contextlib.suppress(ModelshelfError):  # what the payload returns is no model
            shelf.load(ref, trust="ignore-scan")
    except ModelshelfError:
        pass  # the payload ran, and what it returned is no model


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_causalml\n"
        "from modelshelf.plugins import get_registry\n"
        "assert 'causalml-joblib' in get_registry().serializers()\n"
        "bad = [m for m in ('causalml', 'joblib', 'sklearn', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "causalml"})


def test_plugins_command_lists_claims_and_why_unsafe(run_python: Any) -> None:
    out = run_python(
        "from modelshelf.cli import main; main(['plugins'])",
        env={"MODELSHELF_LOAD_PLUGINS": "causalml"},
    ).stdout
    assert "causalml-joblib" in out and "causalml.inference.meta.base.BaseLearner" in out
    assert "unsafe by default because" in out


@pytest.mark.parametrize(
    "kind", ["s-learner", "t-learner", "x-learner", "uplift-tree", "uplift-forest"]
)
def test_learners_round_trip_with_trust(
    shelf: Any,
    make_learner: MakeLearner,
    learner_predict: Predict,
    rows: np.ndarray,
    kind: str,
    trusted_load: Callable[..., Any],
) -> None:
    from modelshelf.serializers import choose

    learner = make_learner(kind)
    # causalml's classes are also scikit-learn estimators: this plugin's claim must be the nearer.
    assert (
        choose(learner, [e.serializer for e in get_registry().serializers().values()]).name
        == "causalml-joblib"
    )
    v = shelf.upload("uplift", learner)
    assert v.serializer.name == "causalml-joblib" and v.serializer.safe is False
    assert v.framework.name == "causalml"
    assert [f.path for f in v.files] == ["learner.joblib"]
    output = v.signature["outputs"][0]
    assert output["kind"] == "uplift" and output["control_name"] == "control"
    assert "treatment" in output["treatment_groups"]
    assert v.serializer.details["params"]["control_name"] == "control"
    with pytest.raises(UntrustedFormat, match="trust=True"):
        shelf.load(v.ref)
    loaded = trusted_load(shelf, v.ref)
    assert type(loaded) is type(learner)
    np.testing.assert_array_equal(learner_predict(loaded, rows), learner_predict(learner, rows))


def test_base_estimators_are_named_in_details(shelf: Any, make_learner: MakeLearner) -> None:
    v = shelf.upload("s", make_learner("s-learner"))
    assert v.serializer.details["object_params"] == {
        "learner": "sklearn.linear_model._base.LinearRegression"
    }


def test_malicious_pickle_runs_only_with_trust(
    shelf: Any, shelf_path: Path, tmp_path: Path
) -> None:
    """A version whose file is a payload, published as someone able to write the shelf could."""
    marker = tmp_path / "pwned"
    version = tmp_path / "version"
    version.mkdir()
    (version / "learner.joblib").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    with pytest.raises(UntrustedFormat):
        CausalMLSerializer().load(version, details={})
    assert not marker.exists()

    class Evil:
        """Pretends to be a causalml learner; pickles as the payload."""

        __module__ = "causalml.inference.meta.evil"

        def __reduce__(self) -> Any:
            return (open, (str(marker), "x"))

    v = shelf.upload("evil", Evil(), serializer="causalml-joblib")
    reader = modelshelf.open(str(shelf_path), cache=tmp_path / "reader-cache")
    with pytest.raises(UntrustedFormat, match="trust=True"):
        reader.load(v.ref)
    assert not marker.exists()
    # The payload is live: trusting it runs it. This is what makes the assertions above meaningful.
    _load_trusting_the_payload(shelf, v.ref, marker)
    assert marker.exists()


def test_not_a_causalml_learner_is_refused(shelf: Any) -> None:
    with pytest.raises(InvalidModel, match="stores CausalML learners") as caught:
        shelf.upload("m", {"weights": [1]}, serializer="causalml-joblib")
    _one_line(caught.value)


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any,
    shelf_path: Path,
    make_learner: MakeLearner,
    learner_predict: Predict,
    rows: np.ndarray,
    run_python: Any,
    tmp_path: Path,
) -> None:
    learner = make_learner("t-learner")
    shelf.upload("uplift", learner)
    np.save(tmp_path / "rows.npy", rows)
    code = (
        "import sys, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('uplift')] == [1]\n"
        "dest = shelf.download('uplift:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['learner.joblib']\n"
        "scan = shelf.get('uplift:1').scan\n"
        "learner = shelf.load('uplift:1', trust='ignore-scan' if scan is not None and scan.dangerous else True)\n"
        "np.save(sys.argv[3], learner.predict(np.load(sys.argv[4])))\n"
    )
    out = tmp_path / "cate.npy"
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "rows.npy"))
    np.testing.assert_array_equal(np.load(out), learner_predict(learner, rows))


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.mkdir()
    (tmp_path / "outside.joblib").write_bytes(b"never to be opened")
    (version / "learner.joblib").symlink_to(tmp_path / "outside.joblib")
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        CausalMLSerializer().load(version, details={}, trust=True)
    _one_line(caught.value)


def test_loads_what_modelstore_wrote(
    make_learner: MakeLearner, learner_predict: Predict, rows: np.ndarray, tmp_path: Path
) -> None:
    """What the modelstore importer hands over: modelstore 0.0.82's model.joblib (joblib.dump)."""
    from modelstore.models.causalml import MODEL_FILE
    from modelstore.models.common import save_joblib

    learner = make_learner("uplift-tree")
    save_joblib(str(tmp_path), learner, file_name=MODEL_FILE)
    loaded = CausalMLSerializer().load(tmp_path, details={"file": MODEL_FILE}, trust=True)
    np.testing.assert_array_equal(learner_predict(loaded, rows), learner_predict(learner, rows))
    for value in ("/etc/passwd", "../model.joblib", 7):
        with pytest.raises(IntegrityError):
            CausalMLSerializer().load(tmp_path, details={"file": value}, trust=True)


def test_unknown_options_are_refused(shelf: Any, make_learner: MakeLearner) -> None:
    with pytest.raises(ModelshelfError, match="accepted: compress"):
        shelf.upload("m", make_learner("s-learner"), options={"compression": 3})
    v = shelf.upload("m", make_learner("s-learner"), options={"compress": 3})
    with pytest.raises(ModelshelfError, match="accepted: mmap_mode"):
        shelf.load(v.ref, trust=True, mmap=True)


def test_registered_through_entry_point() -> None:
    entry = get_registry().serializers()["causalml-joblib"]
    assert entry.distribution == "modelshelf-causalml"
    assert entry.serializer.safe is False
