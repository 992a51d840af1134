"""Input adapters: layers in front of a family so it can read a task's inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OneHot(nn.Module):
    """Token ids (N, L) -> one-hot floats (N, L, vocab). No parameters, so a checkpoint of a model
    behind it holds the same tensors as on float features (shifted by one module index)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x.long(), self.vocab).float()

    def extra_repr(self) -> str:
        return f"vocab={self.vocab}"
