"""Robustness probe: accuracy under Gaussian input noise."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evaluators.predict import logits
from loop.stages import Split


@dataclass
class NoiseRobustness:
    """Accuracy on the probe split with Gaussian noise of std `sigma` added to the inputs (pixel
    scale 0..1); higher is better. The noise is drawn from a fixed seed, so nominee and incumbent
    see the same noisy inputs."""

    sigma: float = 0.3  # strong enough to separate brittle models, weak enough that digits stay legible
    tolerance: float = 0.05
    seed: int = 0
    name: str = "noise"
    higher_is_better: bool = True
    label: str = "accuracy under noise"

    def measure(self, model: nn.Module, split: Split) -> float:
        generator = torch.Generator().manual_seed(self.seed)
        noisy = split.x + self.sigma * torch.randn(split.x.shape, generator=generator)
        return (logits(model, noisy).argmax(1) == split.y).float().mean().item()
