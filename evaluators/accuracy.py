"""Proxy evaluators on the evaluator's own split (`proxy` unless configured otherwise).

The hidden truth evaluator is `Accuracy(split="truth")`: the same code on a split the loop never
sees, so proxy and truth are on the same scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from evaluators.predict import logits
from evaluators.probes.calibration import calibration_columns, ece
from loop.stages import DataView, Scores


@dataclass
class Accuracy:
    """Held-out accuracy. Selected with `evaluator=accuracy` (the default). Also reports the NLL and
    the ECE (15 equal-width confidence bins) of the same split, as extra metrics."""

    split: str = "proxy"

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        out = logits(model, split.x)
        accuracy = (out.argmax(1) == split.y).float().mean().item()
        calibration = ece(calibration_columns(F.log_softmax(out, 1), split.y))
        return Scores(proxy=accuracy, metrics={"nll": F.cross_entropy(out, split.y).item(), "ece": calibration})


@dataclass
class Likelihood:
    """exp(-NLL): the geometric-mean probability given to the right class, in [0, 1] like
    accuracy, but rewarding confident right answers. Selected with `evaluator=likelihood`."""

    split: str = "proxy"

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        out = logits(model, split.x)
        nll = F.cross_entropy(out, split.y).item()
        accuracy = (out.argmax(1) == split.y).float().mean().item()
        return Scores(proxy=math.exp(-nll), metrics={"nll": nll, "accuracy": accuracy})
