"""Tiny torch modules for the modelshelf-torch tests.

A real module (not conftest) so that classes are importable by name, as pickle and fresh
processes need: the conftest puts this directory on ``sys.path``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TinyNet(nn.Module):
    """Linear -> ReLU -> Linear, plus a buffer, so that state dicts hold both kinds of tensor."""

    def __init__(self, n_in: int = 4, hidden: int = 8, n_out: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, n_out)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))) * self.scale


class TiedNet(nn.Module):
    """A language-model shape: the output head shares the embedding's weight."""

    def __init__(self, vocab: int = 11, dim: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor, two state-dict names

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens))


class SlicedNet(nn.Module):
    """Buffers that are different views of one storage, and a non-contiguous one."""

    first_row: torch.Tensor
    rest: torch.Tensor
    transposed: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
        self.register_buffer("first_row", base[0])
        self.register_buffer("rest", base[1:])
        self.register_buffer("transposed", torch.arange(6, dtype=torch.float32).reshape(2, 3).t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.rest.t() + self.first_row[:2].sum() + self.transposed.sum()


class MixedDtypes(nn.Module):
    """bfloat16, float16, int64 and bool tensors."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.randn(3, 3, generator=gen).to(torch.bfloat16))
        self.register_buffer("half_precision", torch.randn(4, generator=gen).half())
        self.register_buffer("counts", torch.arange(5, dtype=torch.int64))
        self.register_buffer("mask", torch.tensor([True, False, True]))


class WithExtraState(nn.Linear):
    """A module whose state dict holds a non-tensor entry."""

    def get_extra_state(self) -> Any:
        return {"vocabulary": ["a", "b"]}

    def set_extra_state(self, state: Any) -> None:
        self.vocabulary = state["vocabulary"]
