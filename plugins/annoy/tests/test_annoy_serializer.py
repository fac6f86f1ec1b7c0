"""modelshelf-annoy against real Annoy indexes, through a real filesystem shelf."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from annoy import AnnoyIndex
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.testing.frameworks import (
    assert_light_import,
    assert_planted_link_refused,
    assert_plugins_command_lists,
)
from modelshelf.testing.single_file import one_line
from modelshelf_annoy import METRICS, AnnoySerializer, infer_metric

Neighbours = Callable[..., list[Any]]


def test_import_and_listing_import_no_framework() -> None:
    assert_light_import("annoy", ["annoy-native"], ["annoy", "numpy"])


def test_plugins_command_lists_the_claim() -> None:
    assert_plugins_command_lists("annoy", "annoy-native", "annoy.Annoy")


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_is_inferred_and_round_trips(
    local_shelf: Any,
    make_index: Callable[..., Any],
    queries: np.ndarray,
    neighbours: Neighbours,
    metric: str,
) -> None:
    index = make_index(metric)
    if metric == "hamming":
        queries = (queries > 0).astype(float)
    expected = neighbours(index, queries)
    v = local_shelf.upload("ann", index)
    assert v.serializer.name == "annoy-native" and v.serializer.safe
    assert [f.path for f in v.files] == ["index.ann"]
    details = v.serializer.details
    assert (details["f"], details["metric"], details["metric_from"]) == (16, metric, "distances")
    assert (details["n_items"], details["n_trees"]) == (200, 5)
    assert v.signature["inputs"][0]["shape"] == [16]
    assert v.signature["outputs"][0]["metric"] == metric
    loaded = local_shelf.load(v.ref)
    assert loaded.f == 16 and loaded.get_n_items() == 200
    assert neighbours(loaded, queries) == expected
    assert neighbours(index, queries) == expected  # the original index still answers after save


def test_metric_option_is_checked_against_the_distances(
    local_shelf: Any, make_index: Callable[..., Any]
) -> None:
    index = make_index("euclidean")
    v = local_shelf.upload("ann", index, options={"metric": "euclidean"})
    assert v.serializer.details["metric_from"] == "option"
    with pytest.raises(InvalidModel, match="not angular distances") as caught:
        local_shelf.upload("ann", index, options={"metric": "angular"})
    one_line(caught.value)
    with pytest.raises(ModelshelfError, match="metric must be one of"):
        local_shelf.upload("ann", index, options={"metric": "cosine"})


def test_undecidable_metric_needs_the_option(
    local_shelf: Any, queries: np.ndarray, neighbours: Neighbours
) -> None:
    """One item gives no distance; 0/1 vectors are as far apart under Manhattan as under Hamming."""
    single = AnnoyIndex(16, "dot")
    single.add_item(0, [1.0] * 16)
    single.build(1)
    assert infer_metric(single) == METRICS
    with pytest.raises(InvalidModel, match=r"options=\{'metric': \.\.\.\}") as caught:
        local_shelf.upload("one", single)
    one_line(caught.value)
    v = local_shelf.upload("one", single, options={"metric": "dot"})
    assert local_shelf.load(v.ref).get_item_vector(0) == [1.0] * 16

    bits = AnnoyIndex(16, "manhattan")
    rng = np.random.default_rng(0)
    for i in range(50):
        bits.add_item(i, rng.integers(0, 2, 16).astype(float).tolist())
    bits.build(3)
    # The distances cannot tell, the file's layout can.
    assert set(infer_metric(bits)) == {"manhattan", "hamming"}
    v = local_shelf.upload("bits", bits)
    assert v.serializer.details["metric"] == "manhattan"
    assert neighbours(local_shelf.load(v.ref), queries) == neighbours(bits, queries)
    with pytest.raises(InvalidModel, match="does not read back as a hamming index"):
        local_shelf.upload("bits", bits, options={"metric": "hamming"})


def test_unbuilt_index_is_a_clear_error(local_shelf: Any) -> None:
    index = AnnoyIndex(4, "angular")
    index.add_item(0, [1, 2, 3, 4])
    with pytest.raises(InvalidModel, match="not built: call index.build") as caught:
        local_shelf.upload("m", index)
    one_line(caught.value)


def test_unknown_options_are_refused(local_shelf: Any, make_index: Callable[..., Any]) -> None:
    with pytest.raises(ModelshelfError, match="metrik"):
        local_shelf.upload("m", make_index("angular"), options={"metrik": "angular"})
    local_shelf.upload("m", make_index("angular"))
    assert local_shelf.load("m:1", prefault=True).get_n_items() == 200
    with pytest.raises(ModelshelfError, match="accepted: prefault"):
        local_shelf.load("m:1", mmap=True)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any,
    local_shelf_path: Path,
    make_index: Callable[..., Any],
    queries: np.ndarray,
    neighbours: Neighbours,
    modelshelf_run_python: Any,
    tmp_path: Path,
) -> None:
    index = make_index("euclidean")
    local_shelf.upload("ann", index)
    np.save(tmp_path / "q.npy", queries)
    code = (
        "import sys, json, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('ann')] == [1]\n"
        "dest = shelf.download('ann:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['index.ann']\n"
        "index = shelf.load('ann:1')\n"
        "found = [index.get_nns_by_vector(q.tolist(), 10, include_distances=True) for q in np.load(sys.argv[4])]\n"
        "open(sys.argv[3], 'w').write(json.dumps(found))\n"
    )
    out = tmp_path / "nns.json"
    modelshelf_run_python(
        code, str(local_shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "q.npy")
    )
    import json

    assert [list(map(list, pair)) for pair in neighbours(index, queries)] == json.loads(
        out.read_text()
    )


def test_damaged_details_are_refused(make_index: Callable[..., Any], tmp_path: Path) -> None:
    serializer = AnnoySerializer()
    saved = serializer.save(make_index("angular"), tmp_path)
    for bad in ({"f": "16"}, {"f": True}, {"f": -1}, {"metric": "cosine"}, {"metric": None}):
        with pytest.raises(InvalidModel, match="damaged") as caught:
            serializer.load(tmp_path, details={**saved.details, **bad})
        one_line(caught.value)
    # A file named by details is vetted: nothing outside the version is opened.
    for value in ("/etc/passwd", "../index.ann", 4, "missing.ann"):
        with pytest.raises(IntegrityError) as caught:
            serializer.load(tmp_path, details={**saved.details, "file": value})
        one_line(caught.value)


def test_loads_what_modelstore_wrote(
    make_index: Callable[..., Any], queries: np.ndarray, neighbours: Neighbours, tmp_path: Path
) -> None:
    """What the modelstore importer hands over: modelstore 0.0.82's model.ann, and the dimension
    and metric from its recorded parameters (num_dimensions, metric)."""
    from modelstore.models.annoy import AnnoyManager, save_model

    index = make_index("euclidean")
    expected = neighbours(index, queries)
    params = AnnoyManager().get_params(model=index, metric="euclidean", num_trees=5)
    written = Path(save_model(str(tmp_path), index))
    assert written.name == "model.ann"
    details = {"file": "model.ann", "f": int(params["num_dimensions"]), "metric": params["metric"]}
    assert neighbours(AnnoySerializer().load(tmp_path, details=details), queries) == expected


def test_symlinked_index_file_is_refused(make_index: Callable[..., Any], tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.mkdir()
    serializer = AnnoySerializer()
    saved = serializer.save(make_index("angular"), version)
    assert_planted_link_refused(serializer, version, saved.details, "index.ann")


@pytest.mark.parametrize("how", ["truncated", "one-node-short", "empty"])
def test_damaged_index_file_is_one_invalid_model_line(
    make_index: Callable[..., Any], tmp_path: Path, how: str
) -> None:
    serializer = AnnoySerializer()
    saved = serializer.save(make_index("angular"), tmp_path)
    path = tmp_path / "index.ann"
    stored = path.read_bytes()
    node = 12 + 4 * 16  # an angular node: a cut at a node boundary is a valid, smaller index
    damaged = {
        "truncated": stored[: len(stored) // 2],
        "one-node-short": stored[:-node],
        "empty": b"",
    }
    path.write_bytes(damaged[how])
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'index.ann'" in one_line(caught.value) and "annoy" in str(caught.value)


def test_registered_through_entry_point() -> None:
    assert get_registry().serializers()["annoy-native"].distribution == "modelshelf-annoy"
