"""The `mlp` family: a plain multi-layer perceptron on flattened inputs.

Genes: depth (hidden layers), width (units per hidden layer), activation, dropout.
Selected with `successor=mlp` (the default).
"""

from __future__ import annotations

from typing import Mapping

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


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
    return nn.Sequential(*layers)
