"""Which modelshelf serializer takes over the files a modelstore model manager wrote.

modelstore records the manager that saved a model as ``model.model_type.library`` (``"sklearn"``,
``"xgboost"``...). A manager listed in :data:`MANAGERS` gets the serializer named there when a
plugin provides it and the archive holds the file it reads: the version then loads as the
framework's object, as if modelshelf had saved it. Every other model is imported with the
built-in ``files`` serializer (``load`` returns the directory of files); when that happens because
the serializer's plugin is missing, the report says which plugin to install.

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
    #: The serializer's ``details`` (what its ``save`` would have reported) for a modelstore model.
    details: Callable[[SourceModel], dict[str, Any]]


def _dependencies(model: SourceModel) -> dict[str, Any]:
    return json_object(json_object(model.meta.get("code")).get("dependencies"))


def _sklearn_joblib_details(model: SourceModel) -> dict[str, Any]:
    model_type = json_object(json_object(model.meta.get("model")).get("model_type"))
    joblib_version = _dependencies(model).get("joblib") or package_version("joblib") or "unknown"
    return {
        "file": "model.joblib",
        "class": model_type.get("type") if isinstance(model_type.get("type"), str) else None,
        "joblib_version": str(joblib_version),
    }


#: modelstore manager -> the serializer that takes over its files. A new row needs a serializer
#: that reads the manager's file as modelstore 0.0.82 writes it, and the ``details`` its ``load``
#: reads. Managers to map once their serializer plugins exist (file written by modelstore 0.0.82):
#:
#: * ``prophet``: ``prophet_model.json`` (``prophet.serialize.model_to_json``), module ``prophet``;
#: * ``gensim``: ``gensim.model`` (``SaveLoad.save``, pickle-based) and, for models with word
#:   vectors, ``gensim.wordvectors`` (``KeyedVectors.save``), module ``gensim``;
#: * ``annoy``: ``model.ann`` (``AnnoyIndex.save``); ``model.parameters`` holds ``num_dimensions``
#:   and ``metric``, which loading needs, module ``annoy``.
MANAGERS: dict[str, ManagerMapping] = {
    mapping.library: mapping
    for mapping in (
        ManagerMapping(
            library="sklearn",
            serializer="sklearn-joblib",
            file="model.joblib",
            module="sklearn",
            version_keys=("sklearn", "scikit-learn"),
            details=_sklearn_joblib_details,
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
    return (FILES, missing) if missing else (mapping.serializer, None)


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
    entry = get_registry().serializers()[mapping.serializer]
    serializer = entry.serializer
    info = SerializerInfo(
        name=serializer.name,
        distribution=entry.distribution,
        distribution_version=entry.distribution_version,
        format=serializer.format,
        safe=serializer.safe,
        details=mapping.details(model),
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


__all__ = ["FILES", "MANAGERS", "Choice", "ManagerMapping", "choose", "planned_serializer"]
