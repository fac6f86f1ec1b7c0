"""One small model per framework the modelstore importer maps, and what it computes.

``build_<library>(workdir)`` trains a model and returns it with the keyword arguments modelstore's
``upload`` takes for it; ``outputs_<library>(model)`` computes predictions, forecasts,
neighbours or vectors on fixed inputs. The test runs ``outputs_*`` on the original model and, in a
fresh process, on the model loaded from the shelf, and compares them. Every framework is imported
inside the functions: a case whose framework is missing is skipped, not the module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Outputs = dict[str, np.ndarray]


def _binary_data(seed: int, rows: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    x = rng.rand(rows, 4)
    return x, (x[:, 0] + x[:, 1] + rng.rand(rows) * 0.3 > 1.1).astype(int)


def _test_inputs(seed: int, rows: int = 8, columns: int = 4) -> np.ndarray:
    return np.random.RandomState(seed).rand(rows, columns)


# --- prophet ----------------------------------------------------------------------------------


def build_prophet(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import pandas as pd
    from prophet import Prophet

    days = pd.date_range("2024-01-01", periods=90, freq="D")
    steps = np.arange(90)
    history = pd.DataFrame({"ds": days, "y": 10 + np.sin(steps / 5.0) + steps * 0.05})
    # No uncertainty sampling: every forecast column is then deterministic.
    model = Prophet(uncertainty_samples=0, yearly_seasonality=False, daily_seasonality=False)
    model.fit(history)
    return model, {"model": model}


def outputs_prophet(model: Any) -> Outputs:
    forecast = model.predict(model.make_future_dataframe(periods=14))
    return {
        "ds": forecast["ds"].astype("int64").to_numpy(),
        "yhat": forecast["yhat"].to_numpy(),
        "trend": forecast["trend"].to_numpy(),
        "weekly": forecast["weekly"].to_numpy(),
    }


# --- gensim -----------------------------------------------------------------------------------

WORDS = ["cat", "dog", "mouse", "bone", "milk", "cheese"]


def build_gensim(workdir: Path) -> tuple[Any, dict[str, Any]]:
    from gensim.models import Word2Vec

    sentences = [["cat", "dog", "mouse"], ["dog", "bone"], ["cat", "milk"], ["mouse", "cheese"]]
    model = Word2Vec(sentences * 10, vector_size=8, min_count=1, workers=1, seed=3, epochs=5)
    return model, {"model": model}


def outputs_gensim(model: Any) -> Outputs:
    similar = model.wv.most_similar("cat", topn=3)
    return {
        "vectors": np.stack([model.wv[word] for word in WORDS]),
        "similar": np.array([word for word, _ in similar]),
        "scores": np.array([score for _, score in similar]),
    }


# --- annoy ------------------------------------------------------------------------------------


def build_annoy(workdir: Path) -> tuple[Any, dict[str, Any]]:
    from annoy import AnnoyIndex

    rng = np.random.RandomState(5)
    index = AnnoyIndex(8, "euclidean")
    for item in range(60):
        index.add_item(item, rng.rand(8).tolist())
    index.set_seed(1)
    index.build(5)
    return index, {"model": index, "metric": "euclidean", "num_trees": 5}


def outputs_annoy(model: Any) -> Outputs:
    queries = _test_inputs(11, rows=5, columns=8)
    return {
        "neighbours": np.array([model.get_nns_by_vector(q.tolist(), 7) for q in queries]),
        "item": np.array(model.get_item_vector(3)),
        "counts": np.array([model.get_n_items(), model.get_n_trees()]),
    }


# --- statsmodels ------------------------------------------------------------------------------


def build_statsmodels(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import statsmodels.api as sm

    rng = np.random.RandomState(2)
    x = sm.add_constant(rng.rand(50, 3))
    y = x @ np.array([1.0, 2.0, -1.0, 0.5]) + rng.rand(50) * 0.1
    results = sm.OLS(y, x).fit()
    return results, {"model": results}


def outputs_statsmodels(model: Any) -> Outputs:
    import statsmodels.api as sm

    x = sm.add_constant(_test_inputs(12, columns=3), has_constant="add")
    return {"predictions": np.asarray(model.predict(x)), "params": np.asarray(model.params)}


# --- lightgbm ---------------------------------------------------------------------------------


def build_lightgbm(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import lightgbm as lgb

    x, y = _binary_data(4)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 4, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=5)
    return booster, {"model": booster}


def outputs_lightgbm(model: Any) -> Outputs:
    return {"predictions": model.predict(_test_inputs(13))}


# --- catboost ---------------------------------------------------------------------------------


def build_catboost(workdir: Path) -> tuple[Any, dict[str, Any]]:
    from catboost import CatBoostClassifier

    x, y = _binary_data(6)
    model = CatBoostClassifier(
        iterations=10, depth=3, random_seed=0, verbose=False, allow_writing_files=False
    )
    model.fit(x, y)
    return model, {"model": model}


def outputs_catboost(model: Any) -> Outputs:
    x = _test_inputs(14)
    return {"probabilities": model.predict_proba(x), "classes": np.asarray(model.predict(x))}


# --- onnx -------------------------------------------------------------------------------------


def build_onnx(workdir: Path) -> tuple[Any, dict[str, Any]]:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    bias = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model, {"model": model}


def outputs_onnx(model: Any) -> Outputs:
    from onnx.reference import ReferenceEvaluator

    (y,) = ReferenceEvaluator(model).run(None, {"X": _test_inputs(15).astype(np.float32)})
    return {"y": np.asarray(y), "bytes": np.frombuffer(model.SerializeToString(), dtype=np.uint8)}


# --- pytorch ----------------------------------------------------------------------------------


def build_pytorch(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    return net, {"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1)}


def outputs_pytorch(model: Any) -> Outputs:
    import torch

    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(_test_inputs(16).astype(np.float32)))
    return {"y": y.numpy()}


# --- tensorflow (Keras 3) ---------------------------------------------------------------------


def build_tensorflow(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model, {"model": model}


def outputs_tensorflow(model: Any) -> Outputs:
    import keras

    # Whatever backend Keras runs on in this process (the suite also runs Keras on torch, whose
    # outputs are tensors that need grad), compare plain arrays.
    return {"y": keras.ops.convert_to_numpy(model(_test_inputs(17).astype(np.float32)))}


# --- pytorch_lightning ------------------------------------------------------------------------


def build_pytorch_lightning(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import pytorch_lightning as pl
    import torch
    from modelstore_lightning_module import TinyRegressor

    torch.manual_seed(0)
    x = torch.from_numpy(_test_inputs(7, rows=32).astype(np.float32))
    y = x.sum(dim=1, keepdim=True)
    model = TinyRegressor(hidden=3)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(workdir),
    )
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    trainer.fit(model, loader)
    return model, {"model": model, "trainer": trainer}


def outputs_pytorch_lightning(model: Any) -> Outputs:
    import torch

    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(_test_inputs(18).astype(np.float32)))
    return {"y": y.numpy()}


# --- fastai -----------------------------------------------------------------------------------


def _tabular_frame(seed: int, rows: int) -> Any:
    import pandas as pd

    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "width": rng.rand(rows),
            "height": rng.rand(rows),
            "colour": rng.choice(["red", "blue"], rows),
        }
    )


def build_fastai(workdir: Path) -> tuple[Any, dict[str, Any]]:
    import torch
    from fastai.tabular.all import (
        Categorify,
        Normalize,
        RegressionBlock,
        TabularDataLoaders,
        tabular_learner,
    )

    torch.manual_seed(0)
    frame = _tabular_frame(8, 64)
    # (fastai's loaders have an attribute "c": a column of that name would shadow it)
    frame["target"] = frame["width"] * 2 + (frame["colour"] == "red")
    loaders = TabularDataLoaders.from_df(
        frame,
        path=workdir,
        y_names="target",
        y_block=RegressionBlock(),
        cat_names=["colour"],
        cont_names=["width", "height"],
        procs=[Categorify, Normalize],
        valid_idx=list(range(48, 64)),
        bs=16,
    )
    learner = tabular_learner(loaders, layers=[8])
    with learner.no_bar(), learner.no_logging():
        learner.fit(1)
    return learner, {"learner": learner}


def outputs_fastai(model: Any) -> Outputs:
    loader = model.dls.test_dl(_tabular_frame(19, 6))
    with model.no_bar(), model.no_logging():
        predictions, _ = model.get_preds(dl=loader)
    return {"predictions": predictions.numpy()}


def load_options(library: str) -> dict[str, Any]:
    """Options ``shelf.load`` needs for the library's version (the class to rebuild...)."""
    if library == "pytorch_lightning":
        from modelstore_lightning_module import TinyRegressor

        return {"cls": TinyRegressor}
    return {}
