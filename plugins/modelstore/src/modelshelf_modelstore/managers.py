"""Which modelshelf serializer takes over the files a modelstore model manager wrote.

modelstore records the manager that saved a model as ``model.model_type.library`` (``"sklearn"``,
``"xgboost"``...). A manager listed in :data:`MANAGERS` gets the serializer named there when a
plugin provides it and the archive holds the file it reads: the version then loads as the
framework's object, as if modelshelf had saved it. Every other model is imported with the
built-in ``files`` serializer (``load`` returns the directory of files); when that happens because
the serializer's plugin is missing, or modelstore's metadata lacks what loading needs, the report
says so (and which plugin to install). A version takes its serializer's safety: one whose format
is a pickle needs ``trust=True`` to load, exactly like the versions that serializer saves.

Serializers are found by name in the plugin registry only: this plugin imports no serializer
plugin and no framework, and core knows none of these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from modelshelf.known_plugins import serializer_plugin_for
from modelshelf.lineage import package_version
from modelshelf.plugins import get_registry
from modelshelf.records import FrameworkInfo, SerializerInfo

from .source import SourceModel, json_object

#: The built-in serializer of plain files, used when no mapping applies.
FILES = "files"


class UnusableMetadata(ValueError):
    """modelstore's metadata lacks what the serializer needs to load the model's file."""


@attrs.frozen
class ManagerMapping:
    """How the files of one modelstore manager become a version of one modelshelf serializer."""

    #: modelstore's manager name, as recorded in ``model.model_type.library``.
    library: str
    #: The modelshelf serializer that loads what the manager wrote.
    serializer: str
    #: The file the manager writes and the serializer loads; without it the model stays files.
    file: str
    #: The framework's top-level module: where to install the serializer from is looked up by it
    #: in :mod:`modelshelf.known_plugins`.
    module: str
    #: Keys of modelstore's ``code.dependencies`` holding the framework's version, first found wins.
    version_keys: tuple[str, ...]
    #: The serializer's ``details`` (what its ``save`` would have reported) for a modelstore model;
    #: raises :class:`UnusableMetadata` when the metadata lacks what loading needs.
    details: Callable[[SourceModel], dict[str, Any]]


def _dependencies(model: SourceModel) -> dict[str, Any]:
    return json_object(json_object(model.meta.get("code")).get("dependencies"))


def _model_type(model: SourceModel) -> str | None:
    """The class name modelstore recorded for the model (``"Word2Vec"``, ``"Prophet"``...)."""
    model_type = json_object(json_object(model.meta.get("model")).get("model_type"))
    name = model_type.get("type")
    return name if isinstance(name, str) else None


def _parameters(model: SourceModel) -> dict[str, Any]:
    return json_object(json_object(model.meta.get("model")).get("parameters"))


def _file_and_class(file: str) -> Callable[[SourceModel], dict[str, Any]]:
    """``details`` naming the file to load and, for reviewers, the class modelstore recorded."""

    def details(model: SourceModel) -> dict[str, Any]:
        return {"file": file, "class": _model_type(model)}

    return details


def _joblib_details(file: str) -> Callable[[SourceModel], dict[str, Any]]:
    def details(model: SourceModel) -> dict[str, Any]:
        joblib_version = _dependencies(model).get("joblib") or package_version("joblib")
        return {
            "file": file,
            "class": _model_type(model),
            "joblib_version": str(joblib_version or "unknown"),
        }

    return details


#: The metrics ``AnnoyIndex(f, metric)`` accepts; anything else in modelstore's metadata could not
#: be loaded.
_ANNOY_METRICS = ("angular", "euclidean", "manhattan", "hamming", "dot")


def _annoy_details(model: SourceModel) -> dict[str, Any]:
    # An .ann file records neither its dimension nor its metric: only modelstore's parameters
    # (the upload's num_dimensions and metric) say how to read it.
    params = _parameters(model)
    f, metric = params.get("num_dimensions"), params.get("metric")
    if not isinstance(f, int) or isinstance(f, bool) or f <= 0 or metric not in _ANNOY_METRICS:
        raise UnusableMetadata(
            f"its metadata gives no usable num_dimensions and metric (num_dimensions={f!r}, "
            f"metric={metric!r}), which reading model.ann needs"
        )
    return {"file": "model.ann", "class": _model_type(model), "f": f, "metric": metric}


#: Classes the catboost-cbm serializer rebuilds, by the class name modelstore records.
_CATBOOST_CLASSES = ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost")


def _catboost_details(model: SourceModel) -> dict[str, Any]:
    recorded = _model_type(model)
    # An unknown (or missing) class still loads, as the plain CatBoost model every class shares.
    restore_as = recorded if recorded in _CATBOOST_CLASSES else "CatBoost"
    return {"file": "model.cbm", "class": recorded, "restore_as": f"catboost.core.{restore_as}"}


def _onnx_details(model: SourceModel) -> dict[str, Any]:
    return {"model_file": "model.onnx"}


def _keras_details(model: SourceModel) -> dict[str, Any]:
    # modelstore's tensorflow manager saves tf.keras models: Keras 3 on the TensorFlow backend.
    return {"file": "model.keras", "class": _model_type(model), "backend": "tensorflow"}


def _lightning_details(model: SourceModel) -> dict[str, Any]:
    return {
        "file": "checkpoint.pt",
        "module_class": _model_type(model),
        "lightning_package": "pytorch_lightning",
        "written_by": "trainer.save_checkpoint",
    }


def _torch_pickle_details(model: SourceModel) -> dict[str, Any]:
    return {"file": "model.pt", "object_class": _model_type(model)}


#: modelstore manager -> the serializer that takes over its files. A new row needs a serializer
#: that reads the manager's file as modelstore 0.0.82 writes it, and the ``details`` its ``load``
#: reads. Managers left on ``files``, and why (modelstore 0.0.82 writes):
#:
#: * ``xgboost``: ``model.xgboost``; ``xgboost-ubj`` reads only its own ``model.ubj``.
#: * ``shap``: ``explainer.joblib`` (a joblib dump); ``shap-pickle`` reads shap's own
#:   ``Explainer.save`` file, ``shap-tree`` its JSON.
#: * ``skorch``: ``model.joblib`` (a joblib dump, whose numpy arrays plain pickle cannot read back)
#:   and ``model.pt`` (parameters only); ``skorch-pickle`` reads a plain pickle.
#: * ``transformers``: ``save_pretrained`` folders flattened into the archive root;
#:   ``transformers-safetensors`` reads its own layout of components.
#: * ``pyspark``: the model folder's ``metadata/`` and ``stages/`` flattened into the archive
#:   root; ``spark-ml`` loads a model folder of its own, with Spark's class name in ``details``.
#: * ``model_file`` uploads and model + explainer pairs (``multiple-models``): no single framework.
MANAGERS: dict[str, ManagerMapping] = {
    mapping.library: mapping
    for mapping in (
        ManagerMapping(
            library="sklearn",
            serializer="sklearn-joblib",
            file="model.joblib",
            module="sklearn",
            version_keys=("sklearn", "scikit-learn"),
            details=_joblib_details("model.joblib"),
        ),
        ManagerMapping(
            library="prophet",
            serializer="prophet-json",
            # prophet.serialize.model_to_json, wrapped once more as a JSON string
            file="prophet_model.json",
            module="prophet",
            version_keys=("prophet",),
            details=_file_and_class("prophet_model.json"),
        ),
        ManagerMapping(
            library="gensim",
            serializer="gensim-native",
            # SaveLoad.save. modelstore archives only this file: arrays gensim writes beside it
            # (.npy, for arrays over 10 MB) are not in the archive, and such a model cannot load.
            file="gensim.model",
            module="gensim",
            version_keys=("gensim",),
            details=_file_and_class("gensim.model"),
        ),
        ManagerMapping(
            library="annoy",
            serializer="annoy-native",
            file="model.ann",
            module="annoy",
            version_keys=("annoy",),
            details=_annoy_details,
        ),
        ManagerMapping(
            library="statsmodels",
            serializer="statsmodels-pickle",
            # results.save, the statsmodels pickle
            file="model.pkl",
            module="statsmodels",
            version_keys=("statsmodels",),
            details=_file_and_class("model.pkl"),
        ),
        ManagerMapping(
            library="causalml",
            serializer="causalml-joblib",
            file="model.joblib",
            module="causalml",
            version_keys=("causalml",),
            details=_joblib_details("model.joblib"),
        ),
        ManagerMapping(
            library="lightgbm",
            serializer="lightgbm-text",
            # Booster.save_model, the file name lightgbm-text reads
            file="model.txt",
            module="lightgbm",
            version_keys=("lightgbm",),
            details=_file_and_class("model.txt"),
        ),
        ManagerMapping(
            library="catboost",
            serializer="catboost-cbm",
            # save_model(format="cbm"), the file name catboost-cbm reads
            file="model.cbm",
            module="catboost",
            version_keys=("catboost",),
            details=_catboost_details,
        ),
        ManagerMapping(
            library="onnx",
            serializer="onnx-protobuf",
            file="model.onnx",
            module="onnx",
            version_keys=("onnx",),
            details=_onnx_details,
        ),
        ManagerMapping(
            library="pytorch",
            serializer="torch-pickle",
            # torch.save of the whole module (checkpoint.pt beside it holds the state dicts)
            file="model.pt",
            module="torch",
            version_keys=("torch",),
            details=_torch_pickle_details,
        ),
        ManagerMapping(
            library="tensorflow",
            serializer="keras-v3",
            # model.save with Keras 3; with Keras 2, modelstore writes a SavedModel folder and
            # the model stays files (no model.keras in its archive).
            file="model.keras",
            module="keras",
            version_keys=("keras",),
            details=_keras_details,
        ),
        ManagerMapping(
            library="pytorch_lightning",
            serializer="lightning-checkpoint",
            file="checkpoint.pt",
            module="pytorch_lightning",
            version_keys=("pytorch_lightning", "lightning"),
            details=_lightning_details,
        ),
        ManagerMapping(
            library="fastai",
            serializer="fastai-export",
            # Learner.export
            file="learner.pkl",
            module="fastai",
            version_keys=("fastai",),
            details=_file_and_class("learner.pkl"),
        ),
    )
}


@attrs.frozen
class Choice:
    """The serializer a modelstore model is imported with."""

    serializer: SerializerInfo
    framework: FrameworkInfo | None
    #: Why the manager's own serializer was not used (its plugin is missing...), else ``None``.
    fallback: str | None = None


def planned_serializer(model: SourceModel) -> tuple[str, str | None]:
    """The serializer name a dry run announces, and why it falls back to files (or ``None``).

    Without the archive its file list is unknown; modelstore's managers always write their file,
    so the mapping alone decides.
    """
    mapping = MANAGERS.get(model.library or "")
    if mapping is None:
        return FILES, None
    missing = _missing(mapping)
    if missing:
        return FILES, missing
    try:
        mapping.details(model)
    except UnusableMetadata as exc:
        return FILES, str(exc)
    return mapping.serializer, None


def choose(model: SourceModel, files: Mapping[str, Path]) -> Choice:
    """The serializer for a model whose archive holds ``files`` (relative path -> local file)."""
    mapping = MANAGERS.get(model.library or "")
    if mapping is None:
        return _files_choice(None)
    missing = _missing(mapping)
    if missing:
        return _files_choice(missing)
    if mapping.file not in files:
        return _files_choice(
            f"its archive has no {mapping.file} for serializer {mapping.serializer!r}"
        )
    try:
        details = mapping.details(model)
    except UnusableMetadata as exc:
        return _files_choice(str(exc))
    entry = get_registry().serializers()[mapping.serializer]
    serializer = entry.serializer
    info = SerializerInfo(
        name=serializer.name,
        distribution=entry.distribution,
        distribution_version=entry.distribution_version,
        format=serializer.format,
        # Exactly as the serializer marks its own versions: pickle-based ones need trust.
        safe=serializer.safe,
        details=details,
    )
    dependencies = _dependencies(model)
    version = next((dependencies[k] for k in mapping.version_keys if dependencies.get(k)), None)
    return Choice(info, FrameworkInfo(serializer.framework, str(version or "unknown")))


def _missing(mapping: ManagerMapping) -> str | None:
    """Why ``mapping.serializer`` cannot be used here, or ``None`` when a plugin provides it."""
    registry = get_registry()
    if mapping.serializer in registry.serializers():
        return None
    distribution = serializer_plugin_for(mapping.module)
    explained = registry.explain_missing_serializer(mapping.serializer, distribution)
    if explained:
        return explained
    where = (
        f"install it with `pip install {distribution}`"
        if distribution
        else "no installed plugin provides it"
    )
    return f"serializer {mapping.serializer!r} is not installed ({where})"


def _files_choice(fallback: str | None) -> Choice:
    entry = get_registry().serializers()[FILES]
    info = SerializerInfo(
        name=FILES,
        distribution=entry.distribution,
        distribution_version=entry.distribution_version,
        format=entry.serializer.format,
        safe=True,
        details={"single_file": None},
    )
    return Choice(info, None, fallback)


__all__ = [
    "FILES",
    "MANAGERS",
    "Choice",
    "ManagerMapping",
    "UnusableMetadata",
    "choose",
    "planned_serializer",
]
