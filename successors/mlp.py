"""The `mlp` family: a plain multi-layer perceptron on flattened inputs.

Genes: depth (hidden layers), width (units per hidden layer), activation, dropout.
Selected with `successor=mlp` (the default).

Two optional inference-time genes exist for evaluator-gaming studies (docs/gaming.md); a genome
without them builds exactly today's model:

- `temperature` (> 0): the logits are divided by it at inference. Below 1 the model is more
  confident with the same answers: what a proxy that rewards confidence can be gamed with.
- `abstain` (in [0, 1]): at inference, wherever the top softmax probability is below it, the model
  answers nothing (all logits 0: a uniform output, no top class). Finite, so training and the
  execution stage's checks go on as before; a scorer that only flags demonstrably wrong answers
  cannot tell it from a right one.

Both act in eval mode only and hold no parameters or buffers, so training (serial, or batched,
which trains stacked copies of the Linear weights and copies them back) and checkpoints are the
same as without them.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class Temperature(nn.Module):
    """Logits / temperature at inference; the identity while training."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.training else logits / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


class Abstain(nn.Module):
    """At inference, rows whose top softmax probability is below `threshold` become all-zero logits
    (a uniform output: no answer); the identity while training."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.training or self.threshold <= 0:
            return logits
        unsure = torch.softmax(logits, -1).amax(-1, keepdim=True) < self.threshold
        return torch.where(unsure, torch.zeros_like(logits), logits)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:g}"


def _inference_genes(arch: Mapping[str, object]) -> list[nn.Module]:
    """The output modules of the optional inference-time genes present in `arch`, checked."""
    heads: list[nn.Module] = []
    if "temperature" in arch:
        temperature = arch["temperature"]
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"mlp gene arch.temperature={temperature!r} must be a finite number > 0 "
                             f"(1 leaves the logits as they are)")
        heads.append(Temperature(float(temperature)))
    if "abstain" in arch:
        threshold = arch["abstain"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"mlp gene arch.abstain={threshold!r} must be a number in [0, 1] "
                             f"(0: always answer)")
        heads.append(Abstain(float(threshold)))
    return heads


def build_mlp(arch: Mapping[str, object], in_features: int, n_classes: int) -> nn.Sequential:
    depth, width = int(arch["depth"]), int(arch["width"])
    dropout, activation = float(arch["dropout"]), str(arch["activation"])
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_features
    for _ in range(depth):
        layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        features = width
    layers.append(nn.Linear(features, n_classes))
    return nn.Sequential(*layers, *_inference_genes(arch))  # after the last Linear: state_dict keys unchanged
