"""Out-of-distribution probe: does the model's confidence drop on inputs that are not digits?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.predict import logits
from evaluators.probes.readouts import cannot_read, reads, statistic_readout
from loop.stages import DataView, Readout, TaskShape


def ood_inputs(x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of non-digits as large as `x`: each item's own pixels in a random order (same ink,
    no shape), and uniform noise images. Seeded, so every model sees the same inputs."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(x.shape, generator=generator).argsort(1)  # one permutation per item
    return x.gather(1, order), torch.rand(x.shape, generator=generator)


def fitted_inverse_temperature(out: torch.Tensor, y: torch.Tensor, low: float = 1e-3, high: float = 1e3) -> float:
    """The 1/T in [low, high] that minimises the NLL of `out / T` on labels `y` (temperature
    scaling, Guo et al. 2017): golden-section search over log(1/T), where the NLL is unimodal."""
    def loss(log_beta: float) -> float:
        return F.cross_entropy(out * math.exp(log_beta), y).item()
    a, b, ratio = math.log(low), math.log(high), (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    loss_c, loss_d = loss(c), loss(d)
    for _ in range(40):  # each step keeps 0.618 of the bracket: 0.618^40 * 14 ~ 6e-8 in log(1/T)
        if loss_c <= loss_d:
            b, d, loss_d = d, c, loss_c
            c = b - ratio * (b - a)
            loss_c = loss(c)
        else:
            a, c, loss_c = c, d, loss_d
            d = a + ratio * (b - a)
            loss_d = loss(d)
    return math.exp((a + b) / 2.0)


def _scores(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_ood = items[:, 1] > 0.5
    return items[~is_ood, 0], np.sort(items[is_ood, 0])


def auroc(items: np.ndarray) -> float:
    """P(an in-distribution item scores above an OOD item), ties counted half, over rows
    (score, is_ood). 0.5 (chance) if a resample lacks either kind."""
    inside, outside = _scores(items)
    if len(inside) == 0 or len(outside) == 0:
        return 0.5
    below = np.searchsorted(outside, inside, "left")
    ties = np.searchsorted(outside, inside, "right") - below
    return float((below + 0.5 * ties).sum() / (len(inside) * len(outside)))


def fpr_at_95_tpr(items: np.ndarray) -> float:
    """Share of OOD items accepted at the threshold that accepts 95% of in-distribution items, over
    rows (score, is_ood). 0.95 (chance) if a resample lacks either kind."""
    inside, outside = _scores(items)
    if len(inside) == 0 or len(outside) == 0:
        return 0.95
    threshold = np.sort(inside)[int(0.05 * len(inside))]  # at least 95% of inside score >= it
    return float(np.mean(outside >= threshold))


@dataclass
class OutOfDistribution:
    """Does the model know when an input is not a digit? Catches successors that are confidently
    wrong off the data: the max-softmax confidence (Hendrycks & Gimpel 2017) as a detector of
    out-of-distribution inputs, in-distribution being the probe split and OOD its pixel-shuffled
    copies plus uniform noise images; AUROC and the false-positive rate at 95% true positives.
    The softmax is taken at the model's own fitted temperature on the (labelled) probe split, so
    the probe judges how the model ranks inputs, not its overall sharpness (the calibration probe
    judges that); the score is its log, in float64, so very confident models do not tie at 1.0.
    Held-out-class OOD (digits of a class never trained on) applies once an objective holds
    classes out; `digits` trains on all ten.

    Selected in `configs/gate/*.yaml` under `probes:` with
    `- _target_: evaluators.probes.OutOfDistribution`.
    """

    # Tolerances vs the spread of honest models (range over 16 seeds of tests/redteam.py's GOOD recipe):
    auroc_tolerance: float = 0.06  # honest range 0.052 (0.836..0.888)
    fpr95_tolerance: float = 0.15  # honest range 0.147 (0.61..0.75): a tail metric, set by ~11 digits
    seed: int = 0  # the OOD inputs are drawn once from this seed
    name: str = "ood"

    def check_task(self, shape: TaskShape) -> None:
        # shuffled or random tokens are ordinary items of a token task, not out of its distribution
        if not reads(shape, "features"):
            raise cannot_read(self.name, "builds out-of-distribution inputs from shuffled float features and "
                              "uniform noise", shape, "leave it out of the gate's probes (gate=tokens does)")

    def measure(self, model: nn.Module, data: DataView, reference: nn.Module) -> list[Readout]:
        x, y = data["probe"].x, data["probe"].y
        shuffled, noise = ood_inputs(x, self.seed)
        out = logits(model, torch.cat([x, shuffled, noise])).double()
        beta = fitted_inverse_temperature(out[:len(x)], y)
        score = torch.log_softmax(out * beta, 1).max(1).values
        is_ood = torch.cat([torch.zeros(len(x)), torch.ones(2 * len(x))]).double()
        items = torch.stack([score, is_ood], 1).numpy()
        return [
            statistic_readout(f"{self.name}/auroc", items, auroc, True, self.auroc_tolerance,
                              "AUROC of max-softmax, digits vs shuffled and noise"),
            statistic_readout(f"{self.name}/fpr95", items, fpr_at_95_tpr, False, self.fpr95_tolerance,
                              "false-positive rate at 95% true-positive rate"),
        ]
