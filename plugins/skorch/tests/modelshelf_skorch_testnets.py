"""Tiny torch modules for the modelshelf-skorch tests, importable by name (pickle and fresh
processes need that): the conftest puts this directory on ``sys.path``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class Classifier(nn.Module):
    """Two features in, three class probabilities out (skorch's NeuralNetClassifier wants those)."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(x), dim=-1)


class WeightedLoss(nn.Module):
    """A criterion with state of its own (class weights as a buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor([1.0, 2.0, 0.5]))

    def forward(self, probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.nll_loss(torch.log(probabilities + 1e-9), target, weight=self.weights)


def data() -> tuple[np.ndarray, np.ndarray]:
    """120 rows of 4 float32 features; 3 classes (fixed seed)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y


def unfitted(hidden: int = 8, criterion: Any = None, *, seed: int = 123, **params: Any) -> Any:
    """A NeuralNetClassifier of :class:`Classifier`, never trained (what a caller passes to
    ``load``); ``seed`` seeds torch first, so its initial weights differ from :func:`fitted`'s."""
    from skorch import NeuralNetClassifier

    torch.manual_seed(seed)
    return NeuralNetClassifier(
        Classifier,
        module__hidden=hidden,
        max_epochs=5,
        lr=0.1,
        batch_size=32,
        train_split=None,
        verbose=0,
        **({"criterion": criterion} if criterion else {}),
        **params,
    )


def fitted(hidden: int = 8, criterion: Any = None, **params: Any) -> Any:
    """A net built like :func:`unfitted`'s, trained 5 epochs on :func:`data` (fixed seed, CPU)."""
    x, y = data()
    return unfitted(hidden, criterion, seed=0, **params).fit(x, y)
