"""statsmodels serializers: ``statsmodels-params`` (safe) and ``statsmodels-pickle`` (needs trust).

``statsmodels-params`` stores what a fitted linear model or GLM needs to predict and to report its
coefficients: the parameters and their normalized covariance (``arrays.npz``, read with
``allow_pickle=False``) and the model spec (``spec.json``: model class, exog column names, endog
name, constant, GLM family and link, scale and degrees of freedom). ``load`` rebuilds the same
results class on a placeholder design of the stored column names, so ``predict``, ``params``,
``bse``, ``tvalues``, ``pvalues``, ``conf_int`` and ``cov_params`` are identical; everything
derived from the training rows themselves (residuals, fitted values, R², log-likelihood,
``summary``) is not stored. Classes and families are chosen from fixed lists, never imported by
a name read from a file.

``statsmodels-pickle`` is ``results.save`` / ``statsmodels.iolib.smpickle.load_pickle``: everything,
for every results class (ARIMA, SARIMAX, ETS, discrete models...), and loading runs whatever the
pickle says.

statsmodels is imported inside ``save``/``load`` only.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
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
SPEC_FILE = "spec.json"
ARRAYS_FILE = "arrays.npz"
PICKLE_FILE = "results.pickle"

#: Model classes the safe form rebuilds: name stored -> (module, class). Prediction of each is
#: ``exog @ params`` (linear models) or ``link.inverse(exog @ params)`` (GLM).
MODELS: dict[str, tuple[str, str]] = {
    "OLS": ("statsmodels.regression.linear_model", "OLS"),
    "WLS": ("statsmodels.regression.linear_model", "WLS"),
    "GLS": ("statsmodels.regression.linear_model", "GLS"),
    "GLM": ("statsmodels.genmod.generalized_linear_model", "GLM"),
}
#: GLM families, and the float settings each takes.
FAMILIES: dict[str, tuple[str, ...]] = {
    "Gaussian": (),
    "Binomial": (),
    "Poisson": (),
    "Gamma": (),
    "InverseGaussian": (),
    "NegativeBinomial": ("alpha",),
    "Tweedie": ("var_power", "eql"),
}
#: GLM links, and the float settings each takes.
LINKS: dict[str, tuple[str, ...]] = {
    "Identity": (),
    "Log": (),
    "Logit": (),
    "Probit": (),
    "Cauchy": (),
    "CLogLog": (),
    "LogLog": (),
    "InversePower": (),
    "InverseSquared": (),
    "Sqrt": (),
    "Power": ("power",),
    "NegativeBinomial": ("alpha",),
}
SAFE_RESULTS = (
    "statsmodels.regression.linear_model.RegressionResultsWrapper",
    "statsmodels.genmod.generalized_linear_model.GLMResultsWrapper",
)


def _statsmodels_version() -> str:
    import statsmodels

    return str(statsmodels.__version__)


def _settings(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


#: Scalar statistics of the fit, stored so the rebuilt results report the original's values
#: (statsmodels would otherwise compute them from the placeholder design).
REGRESSION_STATISTICS = (
    "rsquared",
    "rsquared_adj",
    "llf",
    "aic",
    "bic",
    "fvalue",
    "f_pvalue",
    "ssr",
    "ess",
    "centered_tss",
    "uncentered_tss",
    "mse_model",
    "mse_resid",
    "mse_total",
    "condition_number",
)
GLM_STATISTICS = ("llf", "llnull", "aic", "bic_llf", "deviance", "null_deviance", "pearson_chi2")
#: Per-row results of the training data, which the safe form does not keep: set to empty arrays
#: so that nothing reports numbers computed from the placeholder design.
ROW_RESULTS = (
    "resid",
    "wresid",
    "fittedvalues",
    "resid_pearson",
    "resid_response",
    "resid_working",
    "resid_deviance",
    "resid_anscombe",
    "mu",
)


def _statistics(results: Any, names: tuple[str, ...]) -> dict[str, float | None]:
    import warnings

    out: dict[str, float | None] = {}
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(getattr(results, name))
        except (
            Exception
        ):  # some statistics do not exist for some fits (e.g. fvalue without constant)
            continue
        # JSON holds no NaN or infinity: None stands for them (statsmodels reports nan).
        out[name] = value if math.isfinite(value) else None
    return out


def signature_of(exog_names: list[str], endog_name: str, kind: str) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "exog",
                "dtype": "float64",
                "shape": [None, len(exog_names)],
                "feature_names": exog_names,
            }
        ],
        "outputs": [{"name": endog_name, "dtype": "float64", "shape": [None], "kind": kind}],
    }


def _spec(results: Any) -> dict[str, Any]:
    """The model spec of a results object the safe form can rebuild; InvalidModel otherwise."""
    model = results.model
    kind = type(model).__name__
    alternative = "upload with serializer='statsmodels-pickle' (loading will then need trust=True)"
    if kind not in MODELS or qualified_name(type(model)) != ".".join(MODELS[kind]):
        raise InvalidModel(
            f"statsmodels-params rebuilds {', '.join(MODELS)} models, not {qualified_name(type(model))}: {alternative}"
        )
    if getattr(model, "formula", None) is not None:
        raise InvalidModel(
            "statsmodels-params cannot rebuild a formula's design transform (categories, splines, "
            f"centring learnt from the training data): {alternative}"
        )
    spec: dict[str, Any] = {
        "model": kind,
        "exog_names": [str(n) for n in model.exog_names],
        "endog_name": str(model.endog_names),
        "k_constant": int(model.k_constant),
        "pandas": bool(
            getattr(model.data, "orig_exog", None) is not None
            and hasattr(model.data.orig_exog, "columns")
        ),
        "scale": float(results.scale),
        "df_model": float(results.df_model),
        "df_resid": float(results.df_resid),
        "nobs": float(results.nobs),
        "use_t": bool(getattr(results, "use_t", False)),
        "cov_type": str(getattr(results, "cov_type", "nonrobust")),
        "statistics": _statistics(
            results, GLM_STATISTICS if kind == "GLM" else REGRESSION_STATISTICS
        ),
    }
    if kind == "GLM":
        family, link = model.family, model.family.link
        family_name, link_name = type(family).__name__, type(link).__name__
        if family_name not in FAMILIES or not type(family).__module__.startswith(
            "statsmodels.genmod.families"
        ):
            raise InvalidModel(
                f"statsmodels-params knows no GLM family {qualified_name(type(family))}: {alternative}"
            )
        if link_name not in LINKS or not type(link).__module__.startswith(
            "statsmodels.genmod.families"
        ):
            raise InvalidModel(
                f"statsmodels-params knows no GLM link {qualified_name(type(link))}: {alternative}"
            )
        spec["family"] = {"name": family_name, **_settings(family, FAMILIES[family_name])}
        spec["link"] = {"name": link_name, **_settings(link, LINKS[link_name])}
    if spec["cov_type"] != "nonrobust":
        # A robust covariance is computed from the training rows: its normalized_cov_params alone
        # would give other standard errors.
        raise InvalidModel(
            f"statsmodels-params keeps only the nonrobust covariance (this one is {spec['cov_type']}): {alternative}"
        )
    return spec


def _rebuild(spec: Mapping[str, Any], params: Any, normalized_cov: Any) -> Any:
    import importlib

    import numpy as np
    import pandas as pd

    kind = spec["model"]
    module, name = MODELS[kind]
    model_class = getattr(importlib.import_module(module), name)
    names = list(spec["exog_names"])
    k = len(names)
    # A placeholder design: one row per parameter, so that statsmodels accepts it; no statistic
    # the results report is computed from it except those listed in the module docstring.
    exog: Any = np.eye(k)
    endog: Any = np.zeros(k)
    if spec["pandas"]:
        exog = pd.DataFrame(exog, columns=names)
        endog = pd.Series(endog, name=spec["endog_name"])
    kwargs: dict[str, Any] = {"hasconst": bool(spec["k_constant"])}
    if kind == "GLM":
        from statsmodels.genmod import families
        from statsmodels.genmod.families import links

        link_spec = dict(spec["link"])
        link = getattr(links, LINKS_CLASS[link_spec.pop("name")])(**link_spec)
        family_spec = dict(spec["family"])
        family = getattr(families, family_spec.pop("name"))(link=link, **family_spec)
        kwargs["family"] = family
    model = model_class(endog, exog, **kwargs)
    if not spec["pandas"]:
        model.data.xnames = names
        model.data.ynames = spec["endog_name"]
    model.df_model, model.df_resid = spec["df_model"], spec["df_resid"]
    model.nobs = spec["nobs"]
    if kind == "GLM":
        from statsmodels.genmod.generalized_linear_model import GLMResults, GLMResultsWrapper

        results: Any = GLMResults(
            model, params, normalized_cov, spec["scale"], cov_type="nonrobust", use_t=spec["use_t"]
        )
        wrapper: Any = GLMResultsWrapper
    else:
        from statsmodels.regression.linear_model import RegressionResults, RegressionResultsWrapper

        results = RegressionResults(
            model,
            params,
            normalized_cov_params=normalized_cov,
            scale=spec["scale"],
            use_t=spec["use_t"],
        )
        wrapper = RegressionResultsWrapper
    # statsmodels caches derived values in ``_cache`` (its cache_readonly/cache_writable
    # attributes read it first): fill it with the stored fit, not the placeholder's.
    cache = results._cache
    cache["scale"] = float(spec["scale"])
    if kind == "GLM":
        results.nobs = float(spec["nobs"])  # a plain attribute of GLMResults
    else:
        cache["nobs"] = float(spec["nobs"])
    for name, value in dict(spec.get("statistics") or {}).items():
        if isinstance(name, str) and (value is None or isinstance(value, int | float)):
            cache[name] = float("nan") if value is None else float(value)
    for name in ROW_RESULTS:
        cache[name] = np.empty(0)
    return wrapper(results)


#: Link names stored -> attribute of ``statsmodels.genmod.families.links`` (the same today; kept
#: as a table so a renamed class in a future statsmodels needs one line here).
LINKS_CLASS = {name: name for name in LINKS}


def _check_spec(spec: Any) -> dict[str, Any]:
    """The spec read from ``spec.json``, checked against the fixed tables (ValueError if not)."""
    if not isinstance(spec, dict) or spec.get("model") not in MODELS:
        raise ValueError("no known model class in the spec")
    names = spec.get("exog_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("exog_names is not a list of names")
    for key in ("scale", "df_model", "df_resid", "nobs"):
        if not isinstance(spec.get(key), int | float):
            raise ValueError(f"{key} is not a number")
    if spec["model"] == "GLM":
        family, link = spec.get("family"), spec.get("link")
        if not isinstance(family, dict) or family.get("name") not in FAMILIES:
            raise ValueError("no known GLM family in the spec")
        if not isinstance(link, dict) or link.get("name") not in LINKS:
            raise ValueError("no known GLM link in the spec")
        for entry, allowed in ((family, FAMILIES[family["name"]]), (link, LINKS[link["name"]])):
            extra = set(entry) - {"name", *allowed}
            if extra or not all(isinstance(entry[k], int | float) for k in allowed if k in entry):
                raise ValueError(f"unexpected settings for {entry['name']}")
    return spec


class ParamsSerializer(Serializer):
    """Results of OLS, WLS, GLS and GLM fits as parameters + model spec (no pickle).

    ``load`` returns the same results class (``RegressionResultsWrapper``, ``GLMResultsWrapper``)
    whose ``predict`` gives identical predictions. Refused (with a pointer to
    ``statsmodels-pickle``): formula fits, robust covariances, other model classes.
    """

    name = "statsmodels-params"
    framework = "statsmodels"
    format = "params-json-npz"
    safe = True
    claims = SAFE_RESULTS

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        import numpy as np

        model = getattr(obj, "model", None)
        if model is None or not hasattr(obj, "params"):
            raise InvalidModel(
                f"{self.name} stores fitted statsmodels results, not {qualified_name(type(obj))}"
            )
        spec = _spec(obj)
        params = np.asarray(obj.params, dtype=float)
        normalized_cov = np.asarray(obj.normalized_cov_params, dtype=float)
        (directory / SPEC_FILE).write_text(
            json.dumps(spec, indent=1, sort_keys=True), encoding="utf-8"
        )
        with (directory / ARRAYS_FILE).open("wb") as out:
            np.savez(out, params=params, normalized_cov_params=normalized_cov)
        kind = "glm" if spec["model"] == "GLM" else "regression"
        return SavedModel(
            framework=self.framework,
            framework_version=_statsmodels_version(),
            signature=signature_of(spec["exog_names"], spec["endog_name"], kind),
            details={
                "class": qualified_name(type(obj)),
                "spec": spec,
                "params": {
                    n: float(p)
                    for n, p in zip(spec["exog_names"], params, strict=True)
                    if math.isfinite(p)
                },
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ())
        import numpy as np

        spec_path = model_file(directory, SPEC_FILE)
        arrays_path = model_file(directory, ARRAYS_FILE)
        # The spec comes from the version's verified files, never from details.
        with reading(SPEC_FILE, "statsmodels-params"):
            spec = _check_spec(json.loads(spec_path.read_text(encoding="utf-8")))
        with reading(ARRAYS_FILE, "numpy"), np.load(arrays_path, allow_pickle=False) as arrays:
            params = np.array(arrays["params"], dtype=float)
            normalized_cov = np.array(arrays["normalized_cov_params"], dtype=float)
            k = len(spec["exog_names"])
            if params.shape != (k,) or normalized_cov.shape != (k, k):
                raise ValueError(f"the arrays do not fit {k} parameters")
        with reading(SPEC_FILE, "statsmodels"):
            return _rebuild(spec, params, normalized_cov)


class PickleSerializer(Serializer):
    """Any statsmodels results through ``results.save`` (pickle): needs trust to load.

    ``load`` returns the results object that was saved, whole. Save option ``remove_data`` (bool,
    as ``results.save``: drops the training arrays, keeping what ``predict`` and ``summary`` need).
    """

    name = "statsmodels-pickle"
    framework = "statsmodels"
    format = "pickle"
    safe = False
    claims = ("statsmodels.base.wrapper.ResultsWrapper", "statsmodels.base.model.Results")
    unsafe_default_reason = (
        "time-series and most other statsmodels results (ARIMA, SARIMAX, ETS, discrete models) keep "
        "state only statsmodels' pickle stores; OLS/WLS/GLS/GLM results go to the safe "
        "statsmodels-params"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("remove_data",))
        if not callable(getattr(obj, "save", None)) or getattr(obj, "model", None) is None:
            raise InvalidModel(
                f"{self.name} stores fitted statsmodels results, not {qualified_name(type(obj))}"
            )
        model = obj.model
        remove_data = bool(options.get("remove_data", False))
        # results.save(remove_data=True) strips the object it is called on: strip a copy, never
        # the caller's results.
        (copy.deepcopy(obj) if remove_data else obj).save(
            str(directory / PICKLE_FILE), remove_data=remove_data
        )
        signature = None
        exog_names = getattr(model, "exog_names", None)
        if isinstance(exog_names, list):
            signature = signature_of(
                [str(n) for n in exog_names],
                str(getattr(model, "endog_names", "y")),
                type(model).__name__.lower(),
            )
        details: dict[str, Any] = {
            "file": PICKLE_FILE,
            "class": qualified_name(type(obj)),
            "model": qualified_name(type(model)),
        }
        # A plain array of parameters has no names (no .items()): the signature names them, if at all.
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            details["params"] = {
                str(k): float(v) for k, v in obj.params.items() if math.isfinite(float(v))
            }
        return SavedModel(
            framework=self.framework,
            framework_version=_statsmodels_version(),
            signature=signature,
            details=details,
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
        check_options(self.name, "load", options, ())
        from statsmodels.iolib.smpickle import load_pickle

        # Versions saved here name PICKLE_FILE; imported ones (modelstore's, written by the same
        # results.save) name theirs. model_file vets whatever details say.
        name = details.get("file", PICKLE_FILE)
        path = model_file(directory, name)
        with reading(str(name), "statsmodels"):
            return load_pickle(path)
