"""The `transformer` family: a tiny transformer encoder for token inputs
(`objective=modular_arithmetic`, `objective=sequence`).

Genes: depth (encoder layers), width (d_model), heads, ff (feed-forward hidden units), dropout,
pool (classify from the `last` position or the `mean` over positions). Width must be a multiple
of heads: the model uses the smallest multiple of heads >= width, so every combination the
generator proposes builds (width 30 with 4 heads is d_model 32). Token and learned position
embeddings in front; pre-norm layers (steadier for short training); a final LayerNorm and a
linear head. Each layer is initialised on its own (torch's `nn.TransformerEncoder` would start
every layer as a copy of one). Selected with `successor=transformer`.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

POOLS = ("last", "mean")


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int, seq_len: int, n_classes: int, depth: int, width: int, heads: int,
                 ff: int, dropout: float, pool: str):
        super().__init__()
        self.pool = pool
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(seq_len, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, ff, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tokens(x.long()) + self.positions.weight[:x.shape[1]]
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        return self.head(h[:, -1] if self.pool == "last" else h.mean(1))


def build_transformer(arch: Mapping[str, object], vocab: int, seq_len: int, n_classes: int) -> TinyTransformer:
    depth, heads, ff = int(arch["depth"]), int(arch["heads"]), int(arch["ff"])
    dropout, pool = float(arch["dropout"]), str(arch["pool"])
    if pool not in POOLS:
        raise ValueError(f"transformer pool {pool!r} is not one of {list(POOLS)}")
    if heads < 1 or depth < 1:
        raise ValueError(f"transformer needs depth >= 1 and heads >= 1, got depth={depth}, heads={heads}")
    width = heads * math.ceil(int(arch["width"]) / heads)  # the smallest multiple of heads >= width
    return TinyTransformer(vocab, seq_len, n_classes, depth, width, heads, ff, dropout, pool)
