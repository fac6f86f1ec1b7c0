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
from modelshelf_annoy import METRICS, AnnoySerializer, infer_metric

Neighbours = Callable[..., list[Any]]


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_annoy\n"
        "from modelshelf.plugins import get_registry\n"
        "assert 'annoy-native' in get_registry().serializers()\n"
        "bad = [m for m in ('annoy', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "annoy"})


def test_plugins_command_lists_the_claim(run_python: Any) -> None:
    out = run_python(
        "from modelshelf.cli import main; main(['plugins'])",
        env={"MODELSHELF_LOAD_PLUGINS": "annoy"},
    ).stdout
    assert "annoy-native" in out and "annoy.Annoy" in out


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_is_inferred_and_round_trips(
    shelf: Any,
    make_index: Callable[..., Any],
    queries: np.ndarray,
    neighbours: Neighbours,
    metric: str,
) -> None:
    index = make_index(metric)
    if metric == "hamming":
        queries = (queries > 0).astype(float)
    expected = neighbours(index, queries)
    v = shelf.upload("ann", index)
    assert v.serializer.name == "annoy-native" and v.serializer.safe
    assert [f.path for f in v.files] == ["index.ann"]
    details = v.serializer.details
    assert (details["f"], details["metric"], details["metric_from"]) == (16, metric, "distances")
    assert (details["n_items"], details["n_trees"]) == (200, 5)
    assert v.signature["inputs"][0]["shape"] == [16]
    assert v.signature["outputs"][0]["metric"] == metric
    loaded = shelf.load(v.ref)
    assert loaded.f == 16 and loaded.get_n_items() == 200
    assert neighbours(loaded, queries) == expected
    assert neighbours(index, queries) == expected  # the original index still answers after save


def test_metric_option_is_checked_against_the_distances(
    shelf: Any, make_index: Callable[..., Any]
) -> None:
    index = make_index("euclidean")
    v = shelf.upload("ann", index, options={"metric": "euclidean"})
    assert v.serializer.details["metric_from"] == "option"
    with pytest.raises(InvalidModel, match="not angular distances") as caught:
        shelf.upload("ann", index, options={"metric": "angular"})
    _one_line(caught.value)
    with pytest.raises(ModelshelfError, match="metric must be one of"):
        shelf.upload("ann", index, options={"metric": "cosine"})


def test_undecidable_metric_needs_the_option(
    shelf: Any, queries: np.ndarray, neighbours: Neighbours
) -> None:
    """One item gives no distance; 0/1 vectors are as far apart under Manhattan as under Hamming."""
    single = AnnoyIndex(16, "dot")
    single.add_item(0, [1.0] * 16)
    single.build(1)
    assert infer_metric(single) == METRICS
    with pytest.raises(InvalidModel, match=r"options=\{'metric': \.\.\.\}") as caught:
        shelf.upload("one", single)
    _one_line(caught.value)
    v = shelf.upload("one", single, options={"metric": "dot"})
    assert shelf.load(v.ref).get_item_vector(0) == [1.0] * 16

    bits = AnnoyIndex(16, "manhattan")
    rng = np.random.default_rng(0)
    for i in range(50):
        bits.add_item(i, rng.integers(0, 2, 16).astype(float).tolist())
    bits.build(3)
    # The distances cannot tell, the file's layout can.
    assert set(infer_metric(bits)) == {"manhattan", "hamming"}
    v = shelf.upload("bits", bits)
    assert v.serializer.details["metric"] == "manhattan"
    assert neighbours(shelf.load(v.ref), queries) == neighbours(bits, queries)
    with pytest.raises(InvalidModel, match="does not read back as a hamming index"):
        shelf.upload("bits", bits, options={"metric": "hamming"})


def test_unbuilt_index_is_a_clear_error(shelf: Any) -> None:
    index = AnnoyIndex(4, "angular")
    index.add_item(0, [1, 2, 3, 4])
    with pytest.raises(InvalidModel, match="not built: call index.build") as caught:
        shelf.upload("m", index)
    _one_line(caught.value)


def test_unknown_options_are_refused(shelf: Any, make_index: Callable[..., Any]) -> None:
    with pytest.raises(ModelshelfError, match="metrik"):
        shelf.upload("m", make_index("angular"), options={"metrik": "angular"})
    shelf.upload("m", make_index("angular"))
    assert shelf.load("m:1", prefault=True).get_n_items() == 200
    with pytest.raises(ModelshelfError, match="accepted: prefault"):
        shelf.load("m:1", mmap=True)


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any,
    shelf_path: Path,
    make_index: Callable[..., Any],
    queries: np.ndarray,
    neighbours: Neighbours,
    run_python: Any,
    tmp_path: Path,
) -> None:
    index = make_index("euclidean")
    shelf.upload("ann", index)
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
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "q.npy"))
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
        _one_line(caught.value)
    # A file named by details is vetted: nothing outside the version is opened.
    for value in ("/etc/passwd", "../index.ann", 4, "missing.ann"):
        with pytest.raises(IntegrityError) as caught:
            serializer.load(tmp_path, details={**saved.details, "file": value})
        _one_line(caught.value)


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
    (version / "index.ann").rename(tmp_path / "outside.ann")
    (version / "index.ann").symlink_to(tmp_path / "outside.ann")
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)


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
    assert "'index.ann'" in _one_line(caught.value) and "annoy" in str(caught.value)


def test_registered_through_entry_point() -> None:
    assert get_registry().serializers()["annoy-native"].distribution == "modelshelf-annoy"
