"""Calibration probe: expected calibration error (ECE) of the max-softmax confidence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evaluators.predict import logits
from loop.stages import Split


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE with `bins` equal-width confidence bins: sum over bins of |accuracy - confidence|,
    weighted by the bin's share of items."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    # bin b holds confidences in (b/bins, (b+1)/bins]; confidence 0 cannot occur with softmax
    index = torch.clamp(torch.ceil(confidence * bins).long() - 1, 0, bins - 1)
    ece = torch.zeros(())
    for b in range(bins):
        members = index == b
        if members.any():
            ece += members.float().mean() * (correct[members].mean() - confidence[members].mean()).abs()
    return float(ece)


@dataclass
class Calibration:
    """ECE on the probe split; lower is better. A nominee more than `tolerance` worse than the
    incumbent is vetoed."""

    tolerance: float = 0.05  # ECE on ~225 items moves by ~0.02 between honest seeds
    bins: int = 15
    name: str = "calibration"
    higher_is_better: bool = False
    label: str = "ECE"

    def measure(self, model: nn.Module, split: Split) -> float:
        return expected_calibration_error(torch.softmax(logits(model, split.x), 1), split.y, self.bins)
