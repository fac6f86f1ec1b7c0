"""Which distribution to install for a storage scheme or a framework: the one table of hints.

Used only to tell a user what to install; which plugin actually handles something is decided by
what is installed (:mod:`modelshelf.plugins`).
"""

from __future__ import annotations

#: URL scheme -> the storage plugin distribution that serves it.
STORAGE_SCHEMES: dict[str, str] = {
    "s3": "modelshelf-s3",
    "az": "modelshelf-azure",
    "azure": "modelshelf-azure",
    "gs": "modelshelf-gcs",
    "gcs": "modelshelf-gcs",
}

#: Top-level module of a framework -> the serializer plugin distribution for its objects.
FRAMEWORK_MODULES: dict[str, str] = {
    "sklearn": "modelshelf-sklearn",
    "onnx": "modelshelf-onnx",
    "torch": "modelshelf-torch",
    "xgboost": "modelshelf-xgboost",
    "lightgbm": "modelshelf-lightgbm",
    "catboost": "modelshelf-catboost",
    "keras": "modelshelf-keras",
    "tf_keras": "modelshelf-keras",
    "transformers": "modelshelf-transformers",
    "prophet": "modelshelf-prophet",
    "statsmodels": "modelshelf-statsmodels",
    "gensim": "modelshelf-gensim",
    "annoy": "modelshelf-annoy",
    "shap": "modelshelf-shap",
    "causalml": "modelshelf-causalml",
    "pyspark": "modelshelf-pyspark",
    "lightning": "modelshelf-lightning",
    "pytorch_lightning": "modelshelf-lightning",
    "skorch": "modelshelf-skorch",
    "fastai": "modelshelf-fastai",
}


def scheme_of(url: str) -> str:
    """The URL scheme of a shelf location; a plain path is ``file``."""
    if "://" in url:
        return url.split("://", 1)[0].lower()
    return "file"


def storage_plugin_for(scheme: str) -> str | None:
    return STORAGE_SCHEMES.get(scheme)


def serializer_plugin_for(module: str) -> str | None:
    """The plugin for objects defined in ``module`` (e.g. ``sklearn.linear_model._base``)."""
    return FRAMEWORK_MODULES.get(module.split(".")[0])
