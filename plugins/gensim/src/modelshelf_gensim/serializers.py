"""gensim serializers: ``gensim-word2vec`` (safe) and ``gensim-native`` (pickle, needs trust).

* ``gensim-word2vec`` writes ``KeyedVectors`` in the original word2vec C binary format: a text
  header, then each key and its float32 vector. Reading it parses that and nothing else, so it is
  safe. It keeps keys (in order) and vectors; ``most_similar`` and every other query on the loaded
  vectors give identical results. It is the default for ``KeyedVectors``.
* ``gensim-native`` is gensim's own ``SaveLoad.save``: a pickle (plus ``.npy`` files for large
  arrays). It keeps everything, including what is needed to train further (vocabulary counts,
  output weights, FastText's n-gram buckets), and loading it runs whatever the pickle says. It is
  the default for Word2Vec, FastText, Doc2Vec, ``FastTextKeyedVectors`` and any other gensim object
  (LDA, Dictionary...), because no safe format holds them whole.

Both read the file named by ``details["file"]`` (vetted by
:func:`~modelshelf.serializers.model_file`), so models imported from modelstore (its
``gensim.model``, written by ``SaveLoad.save``, with ``gensim.model.*.npy`` beside it) load with
``gensim-native``.

gensim is imported inside ``save``/``load`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    model_file,
    qualified_name,
    reading,
)

#: Fixed file names, never read from the manifest.
VECTORS_FILE = "vectors.bin"
NATIVE_DIR = "gensim"
NATIVE_FILE = "model.gensim"

KEYED_VECTORS = "gensim.models.keyedvectors.KeyedVectors"
FASTTEXT_KEYED_VECTORS = "gensim.models.fasttext.FastTextKeyedVectors"


def _gensim_version() -> str:
    import gensim

    return str(gensim.__version__)


def _mro_names(obj: Any) -> list[str]:
    return [qualified_name(cls) for cls in type(obj).__mro__]


def vectors_signature(kv: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "key", "dtype": "str", "shape": [], "n_keys": len(kv.index_to_key)}],
        "outputs": [{"name": "vector", "dtype": "float32", "shape": [int(kv.vector_size)]}],
    }


def model_params(obj: Any) -> dict[str, Any]:
    """The training settings a Word2Vec-family model knows (plain values only)."""
    params: dict[str, Any] = {}
    for key in (
        "vector_size",
        "window",
        "min_count",
        "sg",
        "hs",
        "negative",
        "ns_exponent",
        "cbow_mean",
        "alpha",
        "min_alpha",
        "sample",
        "epochs",
        "seed",
        "max_vocab_size",
        "dm",
        "dbow_words",
        "dm_mean",
        "dm_concat",
        "min_n",
        "max_n",
        "bucket",
    ):
        value = getattr(obj, key, None)
        if isinstance(value, bool | int | float | str):
            params[key] = value
    return params


class Word2VecFormatSerializer(Serializer):
    """``KeyedVectors`` in the word2vec binary format; ``load`` returns ``KeyedVectors``.

    Given by name a Word2Vec, Doc2Vec or other model with a ``wv`` attribute, it stores ``model.wv``
    (the vectors only: the model cannot be trained further). ``FastTextKeyedVectors`` are refused:
    the format has no room for their n-gram vectors, which give vectors to unseen words.
    """

    name = "gensim-word2vec"
    framework = "gensim"
    format = "word2vec-binary"
    safe = True
    claims = (KEYED_VECTORS,)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        names = _mro_names(obj)
        kv = obj if KEYED_VECTORS in names else getattr(obj, "wv", None)
        if kv is None or KEYED_VECTORS not in _mro_names(kv):
            raise InvalidModel(
                f"{self.name} stores gensim KeyedVectors (or a model's .wv), not {qualified_name(type(obj))}"
            )
        if FASTTEXT_KEYED_VECTORS in _mro_names(kv):
            raise InvalidModel(
                "the word2vec format cannot hold FastText's n-gram vectors (the vectors of unseen "
                "words): upload the FastText model with serializer='gensim-native' (loading will "
                "need trust=True)"
            )
        keys = list(kv.index_to_key)
        bad = [k for k in keys if not isinstance(k, str) or not k or any(c.isspace() for c in k)]
        if bad:
            raise InvalidModel(
                f"the word2vec format keeps only non-empty string keys without whitespace, and "
                f"{len(bad)} key(s) are not (first: {bad[0]!r}): upload with "
                "serializer='gensim-native' (loading will need trust=True)"
            )
        dtype = str(kv.vectors.dtype)
        if dtype != "float32":
            raise InvalidModel(
                f"the word2vec format stores float32 vectors, these are {dtype}: convert them "
                "(kv.vectors = kv.vectors.astype('float32')) or use serializer='gensim-native'"
            )
        kv.save_word2vec_format(str(directory / VECTORS_FILE), binary=True)
        details: dict[str, Any] = {
            "file": VECTORS_FILE,
            "class": qualified_name(type(obj)),
            "vectors_of": "wv" if kv is not obj else None,
            "n_keys": len(keys),
            "vector_size": int(kv.vector_size),
        }
        if kv is not obj:
            details["params"] = model_params(obj)
        return SavedModel(
            framework=self.framework,
            framework_version=_gensim_version(),
            signature=vectors_signature(kv),
            details={k: v for k, v in details.items() if v is not None},
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ())
        from gensim.models import KeyedVectors

        name = details.get("file", VECTORS_FILE)
        path = model_file(directory, name)
        with reading(str(name), "gensim"):
            kv = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="strict")
            n_keys = details.get("n_keys")
            if isinstance(n_keys, int) and len(kv.index_to_key) != n_keys:
                raise ValueError(f"the file holds {len(kv.index_to_key)} keys, not {n_keys}")
        return kv


class GensimNativeSerializer(Serializer):
    """Any gensim object through gensim's own ``save``/``load`` (pickle): needs trust to load.

    ``load`` returns the object that was saved (Word2Vec, FastText, Doc2Vec... trainable again).
    Save option ``sep_limit`` (bytes; arrays larger are stored as separate ``.npy`` files, gensim's
    default 10 MB); load option ``mmap`` (``"r"`` maps those arrays read-only).
    """

    name = "gensim-native"
    framework = "gensim"
    format = "gensim-pickle"
    safe = False
    claims = ("gensim.utils.SaveLoad", FASTTEXT_KEYED_VECTORS)
    unsafe_default_reason = (
        "a trainable gensim model (vocabulary counts, output weights, FastText n-gram buckets) "
        "exists only as gensim's pickle; its word vectors alone go to the safe gensim-word2vec "
        "(serializer='gensim-word2vec', or upload model.wv)"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("sep_limit",))
        if "gensim.utils.SaveLoad" not in _mro_names(obj):
            raise InvalidModel(
                f"{self.name} stores gensim objects (gensim.utils.SaveLoad), not {qualified_name(type(obj))}"
            )
        target = directory / NATIVE_DIR
        target.mkdir()
        obj.save(str(target / NATIVE_FILE), **options)
        kv = obj if KEYED_VECTORS in _mro_names(obj) else getattr(obj, "wv", None)
        signature = (
            vectors_signature(kv) if kv is not None and hasattr(kv, "index_to_key") else None
        )
        return SavedModel(
            framework=self.framework,
            framework_version=_gensim_version(),
            signature=signature,
            details={
                "file": f"{NATIVE_DIR}/{NATIVE_FILE}",
                "class": qualified_name(type(obj)),
                "params": model_params(obj),
                # gensim writes large arrays next to the pickle, named after it.
                "files": sorted(p.name for p in target.iterdir()),
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        # Core refuses unsafe serializers without trust before downloading; this keeps the
        # serializer safe when it is called directly.
        if not trust:
            raise UntrustedFormat(
                f"{self.name} versions are pickles and loading one can run arbitrary code: load "
                "with trust=True only if you trust where the model comes from"
            )
        check_options(self.name, "load", options, ("mmap",))
        from gensim.utils import SaveLoad

        # Versions saved here name gensim/model.gensim; imported ones (modelstore's gensim.model)
        # name theirs. model_file vets whatever details say.
        name = details.get("file", f"{NATIVE_DIR}/{NATIVE_FILE}")
        path = model_file(directory, name)
        # gensim opens the .npy files beside the pickle by the pickle's file name and the attribute
        # names inside it: loading is trusted anyway (the pickle could open anything).
        with reading(str(name), "gensim"):
            return SaveLoad.load(str(path), mmap=options.get("mmap"))
