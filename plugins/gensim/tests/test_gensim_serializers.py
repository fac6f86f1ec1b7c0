"""modelshelf-gensim against real gensim models, through a real filesystem shelf."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gensim
import numpy as np
import pytest
from gensim.models import Doc2Vec, FastText, KeyedVectors, Word2Vec
from gensim.utils import SaveLoad
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.testing import frameworks
from modelshelf.testing.single_file import one_line
from modelshelf_gensim import GensimNativeSerializer, Word2VecFormatSerializer

MakeModel = Callable[[str], Any]


#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: gensim's classes nor for builtins.hash (Word2Vec's hash function), so a version it flagged loads
#: only with trust="ignore-scan".
FRAMEWORK_IMPORTS = ("gensim.", "builtins.hash")


class WritesMarker(frameworks.WritesMarker, SaveLoad):
    """A gensim object whose unpickling writes the marker file (a stand-in for arbitrary code)."""


def _same_vectors(a: Any, b: Any, words: list[str]) -> None:
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    for word in words:
        assert a.most_similar(word, topn=10) == b.most_similar(word, topn=10)


def test_import_and_listing_import_no_framework() -> None:
    frameworks.assert_light_import(
        "gensim", ["gensim-word2vec", "gensim-native"], ["gensim", "numpy", "scipy", "smart_open"]
    )


def test_plugins_command_lists_claims_and_why_unsafe() -> None:
    frameworks.assert_plugins_command_lists(
        "gensim",
        "gensim-word2vec",
        "gensim.models.keyedvectors.KeyedVectors",
        "gensim-native",
        "gensim.utils.SaveLoad",
        "unsafe by default because",
    )


def test_claims(make_model: MakeModel) -> None:
    w2v = make_model("word2vec")
    assert frameworks.chosen_serializer(w2v.wv) == "gensim-word2vec"
    for kind in ("word2vec", "fasttext", "doc2vec"):
        assert frameworks.chosen_serializer(make_model(kind)) == "gensim-native"
    # FastText's vectors hold n-gram buckets the word2vec format cannot keep.
    assert frameworks.chosen_serializer(make_model("fasttext").wv) == "gensim-native"


def test_keyed_vectors_round_trip(
    local_shelf: Any, make_model: MakeModel, probe_words: list[str]
) -> None:
    kv = make_model("word2vec").wv
    v = local_shelf.upload("emb", kv)
    assert v.serializer.name == "gensim-word2vec" and v.serializer.safe
    assert v.framework.name == "gensim" and v.framework.version == gensim.__version__
    assert [f.path for f in v.files] == ["vectors.bin"]
    assert v.signature == {
        "inputs": [{"name": "key", "dtype": "str", "shape": [], "n_keys": 43}],
        "outputs": [{"name": "vector", "dtype": "float32", "shape": [12]}],
    }
    loaded = local_shelf.load("emb:1")
    assert type(loaded) is KeyedVectors
    _same_vectors(loaded, kv, probe_words)


def test_model_vectors_by_name(
    local_shelf: Any, make_model: MakeModel, probe_words: list[str]
) -> None:
    model = make_model("word2vec")
    v = local_shelf.upload("emb", model, serializer="gensim-word2vec")
    assert v.serializer.details["vectors_of"] == "wv"
    assert v.serializer.details["params"]["vector_size"] == 12
    _same_vectors(local_shelf.load(v.ref), model.wv, probe_words)


def test_refusals_say_what_to_do(local_shelf: Any, make_model: MakeModel) -> None:
    with pytest.raises(InvalidModel, match="n-gram vectors.*gensim-native") as caught:
        local_shelf.upload("ft", make_model("fasttext").wv, serializer="gensim-word2vec")
    one_line(caught.value)
    spaced = KeyedVectors(4)
    spaced.add_vectors(["new york", "paris"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(InvalidModel, match="without whitespace.*'new york'") as caught:
        local_shelf.upload("sp", spaced)
    one_line(caught.value)
    wide = KeyedVectors(4, dtype=np.float64)
    wide.add_vectors(["a", "b"], np.ones((2, 4)))
    with pytest.raises(InvalidModel, match="float64"):
        local_shelf.upload("wide", wide)
    with pytest.raises(ModelshelfError, match="binary"):
        local_shelf.upload("x", make_model("word2vec").wv, options={"binary": False})


@pytest.mark.parametrize("kind", ["word2vec", "fasttext", "doc2vec"])
def test_native_models_round_trip_and_train_on(
    local_shelf: Any,
    make_model: MakeModel,
    probe_words: list[str],
    kind: str,
) -> None:
    model = make_model(kind)
    v = local_shelf.upload(kind, model)
    assert v.serializer.name == "gensim-native" and v.serializer.safe is False
    assert v.serializer.details["params"]["vector_size"] == 12
    assert v.signature["outputs"][0]["shape"] == [12]
    with pytest.raises(UntrustedFormat):
        local_shelf.load(v.ref)
    loaded = frameworks.load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS)
    assert type(loaded) is type(model)
    _same_vectors(loaded.wv, model.wv, probe_words)
    if kind == "fasttext":
        np.testing.assert_array_equal(loaded.wv["unseen-word"], model.wv["unseen-word"])
    if kind == "doc2vec":
        np.testing.assert_array_equal(loaded.dv.vectors, model.dv.vectors)
    # A full model trains on: new words join its vocabulary.
    if kind != "doc2vec":
        loaded.build_vocab([["w0", "w1", "brand-new"]], update=True)
        loaded.train([["w0", "w1", "brand-new"]], total_examples=1, epochs=1)
        assert "brand-new" in loaded.wv.key_to_index


def test_large_arrays_go_to_separate_files(
    local_shelf: Any, make_model: MakeModel, probe_words: list[str]
) -> None:
    model = make_model("word2vec")
    v = local_shelf.upload("split", model, options={"sep_limit": 100})
    paths = sorted(f.path for f in v.files)
    assert "gensim/model.gensim" in paths and any(p.endswith(".npy") for p in paths)
    _same_vectors(
        frameworks.load_trusted(local_shelf, v.ref, FRAMEWORK_IMPORTS, mmap="r").wv,
        model.wv,
        probe_words,
    )


def test_malicious_pickle_runs_only_with_trust(local_shelf: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    local_shelf.upload("evil", WritesMarker(str(marker)))  # claimed through gensim.utils.SaveLoad
    downloaded = local_shelf.download("evil:1", tmp_path / "dl")
    with pytest.raises(UntrustedFormat):
        GensimNativeSerializer().load(downloaded, details={})
    frameworks.assert_payload_needs_trust(local_shelf, "evil:1", marker, tmp_path / "reader-cache")


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any,
    local_shelf_path: Path,
    make_model: MakeModel,
    probe_words: list[str],
    modelshelf_run_python: Any,
    tmp_path: Path,
) -> None:
    model = make_model("word2vec")
    local_shelf.upload("emb", model.wv)
    local_shelf.upload("full", model)
    code = (
        "import sys, json, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('emb')] == [1]\n"
        "dest = shelf.download('emb:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['vectors.bin']\n"
        "kv = shelf.load('emb:1')\n"
        "scan = shelf.get('full:1').scan\n"
        "full = shelf.load('full:1', trust='ignore-scan' if scan is not None and scan.dangerous else True)\n"
        "words = json.loads(sys.argv[4])\n"
        "out = {w: [kv[w].tolist(), kv.most_similar(w, topn=5), full.wv.most_similar(w, topn=5)] for w in words}\n"
        "open(sys.argv[3], 'w').write(json.dumps(out))\n"
    )
    out = tmp_path / "out.json"
    modelshelf_run_python(
        code, str(local_shelf_path), str(tmp_path / "dl"), str(out), json.dumps(probe_words)
    )
    got = json.loads(out.read_text())
    for word in probe_words:
        vector, similar, similar_full = got[word]
        assert vector == model.wv[word].tolist()
        expected = [list(pair) for pair in model.wv.most_similar(word, topn=5)]
        assert similar == expected and similar_full == expected


def test_symlinked_file_is_refused(make_model: MakeModel, tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.mkdir()
    serializer = Word2VecFormatSerializer()
    saved = serializer.save(make_model("word2vec").wv, version)
    frameworks.assert_planted_link_refused(serializer, version, saved.details, "vectors.bin")


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "fewer-keys"])
def test_damaged_vectors_file_is_one_invalid_model_line(
    make_model: MakeModel, tmp_path: Path, how: str
) -> None:
    serializer = Word2VecFormatSerializer()
    kv = make_model("word2vec").wv
    saved = serializer.save(kv, tmp_path)
    path = tmp_path / "vectors.bin"
    stored = path.read_bytes()
    if how == "fewer-keys":
        # A well-formed file with another vocabulary: the key count in the manifest catches it.
        smaller = KeyedVectors(12)
        smaller.add_vectors(["a"], np.ones((1, 12), dtype=np.float32))
        smaller.save_word2vec_format(str(path), binary=True)
    else:
        path.write_bytes(
            {"truncated": stored[: len(stored) // 2], "garbage": b"\xff\xfe" * 300, "empty": b""}[
                how
            ]
        )
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'vectors.bin'" in one_line(caught.value) and "gensim" in str(caught.value)


def test_loads_what_modelstore_wrote(
    make_model: MakeModel, probe_words: list[str], tmp_path: Path
) -> None:
    """What the modelstore importer hands over: modelstore 0.0.82's gensim.model (SaveLoad.save,
    with its .npy files beside it when arrays are large) and gensim.wordvectors."""
    from modelstore.models.gensim import _save_model, _save_vectors

    model = make_model("word2vec")
    written = Path(_save_model(str(tmp_path), model))
    _save_vectors(str(tmp_path), model)
    assert written.name == "gensim.model" and (tmp_path / "gensim.wordvectors").is_file()
    with pytest.raises(UntrustedFormat):
        GensimNativeSerializer().load(tmp_path, details={"file": "gensim.model"})
    loaded = GensimNativeSerializer().load(tmp_path, details={"file": "gensim.model"}, trust=True)
    assert type(loaded) is Word2Vec
    _same_vectors(loaded.wv, model.wv, probe_words)


def test_native_details_naming_files_outside_are_refused(
    make_model: MakeModel, tmp_path: Path
) -> None:
    saved = GensimNativeSerializer().save(make_model("word2vec"), tmp_path)
    for value in ("/etc/passwd", "../x", 3, "gensim/missing"):
        with pytest.raises(IntegrityError) as caught:
            GensimNativeSerializer().load(
                tmp_path, details={**saved.details, "file": value}, trust=True
            )
        one_line(caught.value)


def test_registered_through_entry_point() -> None:
    entries = get_registry().serializers()
    assert entries["gensim-word2vec"].distribution == "modelshelf-gensim"
    assert entries["gensim-native"].serializer.safe is False
    assert pickle.dumps(entries["gensim-native"].serializer.claims)


def test_word2vec_doc2vec_fasttext_are_gensim_classes() -> None:
    # Guards the claims: if gensim moves these classes, the claims above must follow.
    assert {Word2Vec.__module__, FastText.__module__, Doc2Vec.__module__} == {
        "gensim.models.word2vec",
        "gensim.models.fasttext",
        "gensim.models.doc2vec",
    }
