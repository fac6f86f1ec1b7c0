"""Fixtures for the modelshelf-lightning tests: tiny trained modules, fixed inputs, real shelves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from modelshelf.testing.frameworks import import_test_helpers

modules = import_test_helpers(__file__, "modelshelf_lightning_testmodules")


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(42))


@pytest.fixture
def trained(tmp_path: Path) -> Any:
    """A TinyRegressor (hidden=6, lr=0.1) trained for 3 epochs by a real Trainer, still attached."""
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(0, verbose=False)
    inputs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    targets = inputs[:, :1] * 2.0 - inputs[:, 1:2]
    model = modules.TinyRegressor(hidden=6, lr=0.1)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path / "trainer"),
    )
    trainer.fit(model, DataLoader(TensorDataset(inputs, targets), batch_size=16))
    return model.eval()


def forward(model: Any, inputs: torch.Tensor) -> Any:
    with torch.no_grad():
        return model.eval()(inputs).numpy()


@pytest.fixture
def run() -> Callable[[Any, Any], Any]:
    return forward
