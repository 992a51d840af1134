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


def _kinds_stack(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R, n) scores and is_ood of each resample, and its counts of in-distribution and OOD items."""
    score, is_ood = stack[:, :, 0], stack[:, :, 1] > 0.5
    outside = is_ood.sum(1)
    return score, is_ood, stack.shape[1] - outside, outside


def auroc_stack(stack: np.ndarray) -> np.ndarray:
    # `auroc` counts, for each inside item, the OOD items below it and half those tied with it. In
    # each resample sorted by score (NaNs last and tied with each other, as np.searchsorted has
    # them), those are the OOD items before the item's run of equal scores, and half those in it.
    score, is_ood, inside, outside = _kinds_stack(stack)
    order = np.argsort(score, axis=1)  # any order within a run of ties gives the same counts
    score, is_ood = np.take_along_axis(score, order, 1), np.take_along_axis(is_ood, order, 1)
    step = (score[:, 1:] != score[:, :-1]) & ~(np.isnan(score[:, 1:]) & np.isnan(score[:, :-1]))
    edge = np.ones((len(score), 1), bool)
    position = np.arange(score.shape[1])
    starts = np.maximum.accumulate(np.where(np.hstack([edge, step]), position, 0), 1)
    ends = np.minimum.accumulate(np.where(np.hstack([step, edge]), position, position[-1])[:, ::-1], 1)[:, ::-1]
    ood_through = np.cumsum(is_ood, 1)  # OOD items at or before each position
    below = np.take_along_axis(ood_through - is_ood, starts, 1)
    tied = np.take_along_axis(ood_through, ends, 1) - below
    counted = np.where(is_ood, 0, 2 * below + tied).sum(1)  # twice `auroc`'s sum: whole numbers, exact
    pairs = inside * outside
    return np.where(pairs > 0, counted / 2 / np.maximum(pairs, 1), 0.5)


def fpr_at_95_tpr_stack(stack: np.ndarray) -> np.ndarray:
    score, is_ood, inside, outside = _kinds_stack(stack)
    # OOD scores set to NaN sort last, after every inside score, so a row's first `inside` sorted
    # values are `np.sort(inside)` (its own NaNs included: they are last there too)
    inside_sorted = np.sort(np.where(is_ood, np.nan, score), 1)
    threshold = inside_sorted[np.arange(len(score)), (0.05 * inside).astype(np.int64)]
    accepted = (is_ood & (score >= threshold[:, None])).sum(1)
    return np.where((inside > 0) & (outside > 0), accepted / np.maximum(outside, 1), 0.95)


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
                              "AUROC of max-softmax, digits vs shuffled and noise", auroc_stack),
            statistic_readout(f"{self.name}/fpr95", items, fpr_at_95_tpr, False, self.fpr95_tolerance,
                              "false-positive rate at 95% true-positive rate", fpr_at_95_tpr_stack),
        ]
