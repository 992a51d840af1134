"""The `cnn` family: a small convolutional network for images given as flattened float features
(the 8x8 digits of `objective=digits`).

Genes: depth (convolution layers), channels (per layer), kernel (size; "same" padding keeps the
image size), activation, dropout; then a linear head on the flattened feature maps, which keeps
where on the image a stroke is (on 8x8 images there is little to gain from pooling it away).
Selected with `successor=cnn`.
"""

from __future__ import annotations

from typing import Mapping

from torch import nn

from successors.mlp import ACTIVATIONS


def build_cnn(arch: Mapping[str, object], image: tuple[int, ...], n_classes: int) -> nn.Sequential:
    depth, channels, kernel = int(arch["depth"]), int(arch["channels"]), int(arch["kernel"])
    dropout, activation = float(arch["dropout"]), str(arch["activation"])
    if activation not in ACTIVATIONS:
        raise ValueError(f"cnn activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"cnn kernel={kernel} must be an odd whole number >= 1 (\"same\" padding)")
    if len(image) != 2:
        raise ValueError(f"cnn needs a (height, width) image, got image={image}")
    height, width = image
    layers: list[nn.Module] = [nn.Unflatten(1, (1, height, width))]
    before = 1
    for _ in range(depth):
        layers += [nn.Conv2d(before, channels, kernel, padding=kernel // 2), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        before = channels
    layers += [nn.Flatten(), nn.Linear(channels * height * width, n_classes)]
    return nn.Sequential(*layers)
