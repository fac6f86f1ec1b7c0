"""Tiny Lightning modules for the modelshelf-lightning tests, importable by name (pickle and fresh
processes need that): the conftest puts this directory on ``sys.path``."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import pytorch_lightning as PL
import torch
from torch import nn


class TinyRegressor(L.LightningModule):
    """Linear -> Tanh -> Linear, hyperparameters saved, an example input (so a signature)."""

    def __init__(
        self, n_in: int = 4, hidden: int = 8, lr: float = 0.05, activation: str = "tanh"
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.example_input_array = torch.zeros(2, n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ConfiguredLater(L.LightningModule):
    """Builds its layers in ``configure_model``, as large models do."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer: nn.Module | None = None

    def configure_model(self) -> None:
        if self.layer is None:
            self.layer = nn.Linear(self.hparams.width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.layer is not None
        return self.layer(x)


class FromDict(L.LightningModule):
    """Takes one ``config`` dict, saved with ``save_hyperparameters(config)``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters(config)
        self.layer = nn.Linear(config["n_in"], config["n_out"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WithModuleArgument(L.LightningModule):
    """An ``nn.Module`` among the hyperparameters: JSON cannot hold it."""

    def __init__(self, backbone: nn.Module, scale: float = 2.0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=[])
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) * self.hparams.scale


class ClassicRegressor(PL.LightningModule):
    """The same network on the ``pytorch_lightning`` package."""

    def __init__(self, n_in: int = 4, hidden: int = 5) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
