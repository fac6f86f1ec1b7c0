"""modelshelf-causalml against real CausalML learners, through a real filesystem shelf."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.testing.frameworks import (
    WritesMarker,
    assert_light_import,
    assert_payload_needs_trust,
    assert_planted_link_refused,
    assert_plugins_command_lists,
    chosen_serializer,
    load_trusted,
)
from modelshelf.testing.single_file import one_line
from modelshelf_causalml import CausalMLSerializer

MakeLearner = Callable[[str], Any]
Predict = Callable[[Any, np.ndarray], np.ndarray]


#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: causalml's learner and tree classes, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS = ("causalml.",)


def test_import_and_listing_import_no_framework() -> None:
    assert_light_import("causalml", ["causalml-joblib"], ["causalml", "joblib", "sklearn", "numpy"])


def test_plugins_command_lists_claims_and_why_unsafe() -> None:
    assert_plugins_command_lists(
        "causalml",
        "causalml-joblib",
        "causalml.inference.meta.base.BaseLearner",
        "unsafe by default because",
    )


@pytest.mark.parametrize(
    "kind", ["s-learner", "t-learner", "x-learner", "uplift-tree", "uplift-forest"]
)
def test_learners_round_trip_with_trust(
    local_shelf: Any,
    make_learner: MakeLearner,
    learner_predict: Predict,
    rows: np.ndarray,
    kind: str,
) -> None:
    learner = make_learner(kind)
    # causalml's classes are also scikit-learn estimators: this plugin's claim must be the nearer.
    assert chosen_serializer(learner) == "causalml-joblib"
    v = local_shelf.upload("uplift", learner)
    assert v.serializer.name == "causalml-joblib" and v.serializer.safe is False
    assert v.framework.name == "causalml"
    assert [f.path for f in v.files] == ["learner.joblib"]
    output = v.signature["outputs"][0]
    assert output["kind"] == "uplift" and output["control_name"] == "control"
    assert "treatment" in output["treatment_groups"]
    assert v.serializer.details["params"]["control_name"] == "control"
    with pytest.raises(UntrustedFormat, match="trust=True"):
        local_shelf.load(v.ref)
    loaded = load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS)
    assert type(loaded) is type(learner)
    np.testing.assert_array_equal(learner_predict(loaded, rows), learner_predict(learner, rows))


def test_base_estimators_are_named_in_details(local_shelf: Any, make_learner: MakeLearner) -> None:
    v = local_shelf.upload("s", make_learner("s-learner"))
    assert v.serializer.details["object_params"] == {
        "learner": "sklearn.linear_model._base.LinearRegression"
    }


def test_malicious_pickle_runs_only_with_trust(local_shelf: Any, tmp_path: Path) -> None:
    """A version whose file is a payload, published as someone able to write the shelf could."""
    marker = tmp_path / "pwned"
    version = tmp_path / "version"
    version.mkdir()
    (version / "learner.joblib").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    with pytest.raises(UntrustedFormat):
        CausalMLSerializer().load(version, details={})
    assert not marker.exists()

    class Evil(WritesMarker):
        """Pretends to be a causalml learner; pickles as the payload."""

        __module__ = "causalml.inference.meta.evil"

    v = local_shelf.upload("evil", Evil(marker), serializer="causalml-joblib")
    assert_payload_needs_trust(local_shelf, v.ref, marker, tmp_path / "reader-cache")


def test_not_a_causalml_learner_is_refused(local_shelf: Any) -> None:
    with pytest.raises(InvalidModel, match="stores CausalML learners") as caught:
        local_shelf.upload("m", {"weights": [1]}, serializer="causalml-joblib")
    one_line(caught.value)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any,
    make_learner: MakeLearner,
    learner_predict: Predict,
    rows: np.ndarray,
    modelshelf_fresh_load: Any,
) -> None:
    learner = make_learner("t-learner")
    local_shelf.upload("uplift", learner)
    fresh = modelshelf_fresh_load(local_shelf.url, "uplift:1", rows, trust=True)
    assert (fresh.versions, fresh.files) == ([1], ["learner.joblib"])
    np.testing.assert_array_equal(fresh.outputs["predict"], learner_predict(learner, rows))


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.mkdir()
    (version / "learner.joblib").write_bytes(b"never to be opened")
    assert_planted_link_refused(CausalMLSerializer(), version, {}, "learner.joblib", trust=True)


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


def test_unknown_options_are_refused(local_shelf: Any, make_learner: MakeLearner) -> None:
    with pytest.raises(ModelshelfError, match="accepted: compress"):
        local_shelf.upload("m", make_learner("s-learner"), options={"compression": 3})
    v = local_shelf.upload("m", make_learner("s-learner"), options={"compress": 3})
    with pytest.raises(ModelshelfError, match="accepted: mmap_mode"):
        local_shelf.load(v.ref, trust=True, mmap=True)


def test_registered_through_entry_point() -> None:
    entry = get_registry().serializers()["causalml-joblib"]
    assert entry.distribution == "modelshelf-causalml"
    assert entry.serializer.safe is False
