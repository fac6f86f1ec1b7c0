"""The ``prophet-json`` serializer: ``prophet.serialize.model_to_json`` / ``model_from_json``.

The file is Prophet's documented JSON form of a fitted model: its settings, the fitted parameters,
the training history, holidays and seasonalities. Reading it parses JSON (with pandas' JSON
reader for the frames) and sets a fixed list of attributes on a fresh ``Prophet``; it never runs
stored code, so the serializer is safe. Only a fitted model can be saved (Prophet's rule).

``load`` reads the file named by ``details["file"]`` (vetted by
:func:`~modelshelf.serializers.model_file`), so versions imported from modelstore load too: its
``prophet_model.json`` holds the same JSON wrapped once more as a JSON string, which is unwrapped.

prophet is imported inside :meth:`~ProphetSerializer.save` and :meth:`~ProphetSerializer.load`
only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    is_json_exact,
    jsonable,
    model_file,
    qualified_name,
    reading,
)

#: Written into the version directory. Fixed, never read from the manifest.
MODEL_FILE = "model.json"

#: Constructor settings worth showing in the manifest (all plain values in Prophet).
_SETTINGS = (
    "growth",
    "n_changepoints",
    "changepoint_range",
    "yearly_seasonality",
    "weekly_seasonality",
    "daily_seasonality",
    "seasonality_mode",
    "seasonality_prior_scale",
    "changepoint_prior_scale",
    "holidays_prior_scale",
    "holidays_mode",
    "mcmc_samples",
    "interval_width",
    "uncertainty_samples",
    "scaling",
)


def _check_no_options(serializer: str, step: str, options: Mapping[str, Any]) -> None:
    if options:
        raise ModelshelfError(
            f"{serializer} takes no {step} options (got {', '.join(sorted(options))})"
        )


def prophet_signature(model: Any) -> dict[str, Any]:
    """The columns ``predict`` needs in its ``future`` frame, and the forecast columns it returns.

    ``ds`` always; ``cap`` (and ``floor`` when the history had one) for logistic growth; every
    extra regressor; every condition column of a conditional seasonality.
    """
    columns = ["ds"]
    if model.growth == "logistic":
        columns.append("cap")
        if getattr(model, "logistic_floor", False):
            columns.append("floor")
    columns.extend(str(name) for name in model.extra_regressors)
    for seasonality in model.seasonalities.values():
        condition = seasonality.get("condition_name")
        if condition is not None and str(condition) not in columns:
            columns.append(str(condition))
    outputs = ["ds", "yhat"]
    if model.uncertainty_samples or model.mcmc_samples:
        outputs += ["yhat_lower", "yhat_upper"]
    entry: dict[str, Any] = {"name": "future", "kind": "dataframe", "columns": columns}
    return {
        "inputs": [entry],
        "outputs": [{"name": "forecast", "kind": "dataframe", "columns": outputs}],
    }


def prophet_details(model: Any) -> dict[str, Any]:
    settings = {k: getattr(model, k, None) for k in _SETTINGS}
    details: dict[str, Any] = {
        "file": MODEL_FILE,
        "class": qualified_name(type(model)),
        "params": {
            k: v for k, v in jsonable(settings).items() if v is not None and is_json_exact(v)
        },
        "extra_regressors": [str(name) for name in model.extra_regressors],
        "seasonalities": [str(name) for name in model.seasonalities],
    }
    history = getattr(model, "history_dates", None)
    if history is not None and len(history):
        details["history"] = {
            "start": history.min().isoformat(),
            "end": history.max().isoformat(),
            "rows": len(history),
        }
    return details


class ProphetSerializer(Serializer):
    """Fitted ``prophet.Prophet`` models in Prophet's JSON format; ``load`` returns a ``Prophet``.

    Forecasts of the loaded model are identical to the original's (``yhat`` and components; the
    uncertainty interval is sampled, so it is identical only under the same random seed).
    """

    name = "prophet-json"
    framework = "prophet"
    format = "json"
    safe = True
    claims = ("prophet.forecaster.Prophet",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        _check_no_options(self.name, "save", options)
        import prophet
        from prophet.serialize import model_to_json

        if getattr(obj, "history", None) is None:
            raise InvalidModel(
                f"cannot save an unfitted {type(obj).__name__}: Prophet only serializes fitted "
                "models, fit it before uploading"
            )
        try:
            text = model_to_json(obj)
        except Exception as exc:
            raise InvalidModel(
                f"prophet cannot serialize this {type(obj).__name__} ({type(exc).__name__}: "
                f"{_first_line(exc)})"
            ) from exc
        (directory / MODEL_FILE).write_text(text, encoding="utf-8")
        return SavedModel(
            framework=self.framework,
            framework_version=str(prophet.__version__),
            signature=prophet_signature(obj),
            details=prophet_details(obj),
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        _check_no_options(self.name, "load", options)
        from prophet.serialize import model_from_json

        # Versions saved here name MODEL_FILE; imported ones (modelstore's prophet_model.json)
        # name theirs. model_file vets whatever details say.
        name = details.get("file", MODEL_FILE)
        path = model_file(directory, name)
        with reading(str(name), "prophet"):
            text = path.read_text(encoding="utf-8")
            if text.lstrip().startswith('"'):
                # modelstore writes json.dumps(model_to_json(model)): the model's JSON text as one
                # JSON string. Decoding it once gives Prophet's JSON back.
                text = json.loads(text)
                if not isinstance(text, str):
                    raise ValueError("the file holds a JSON value that is not a Prophet model")
            return model_from_json(text)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
