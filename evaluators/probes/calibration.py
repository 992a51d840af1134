"""Calibration probe: does the model's confidence match how often it is right?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from evaluators.predict import logits
from evaluators.probes.readouts import cannot_read, per_resample_bincount, reads, statistic_readout
from loop.stages import DataView, Readout, TaskShape


def calibration_columns(log_probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Rows (max-softmax confidence, 1.0 if the top class is right, log-probability of the label).
    Takes log-probabilities so a very confident wrong answer costs a finite, large NLL."""
    log_probs = log_probs.double()
    top, predicted = log_probs.max(1)
    log_true = log_probs[torch.arange(len(labels)), labels]
    return torch.stack([top.exp(), (predicted == labels).double(), log_true], 1).numpy()


def _ece(items: np.ndarray, index: np.ndarray, bins: int) -> float:
    # sum over bins of share * |accuracy - confidence| = sum over bins of |sum(correct - conf)| / n
    gaps = np.bincount(index, weights=items[:, 1] - items[:, 0], minlength=bins)
    return float(np.abs(gaps).sum() / len(items))


def _ece_stack(stack: np.ndarray, index: np.ndarray, bins: int) -> np.ndarray:
    gaps = per_resample_bincount(index, bins, stack[:, :, 1] - stack[:, :, 0])
    return np.abs(gaps).sum(1) / stack.shape[1]


def _equal_width(confidence: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def ece(items: np.ndarray, bins: int = 15) -> float:
    """ECE with `bins` equal-width confidence bins; bin b holds confidences in (b/bins, (b+1)/bins]."""
    return _ece(items, _equal_width(items[:, 0], bins), bins)


def ece_stack(stack: np.ndarray, bins: int = 15) -> np.ndarray:
    return _ece_stack(stack, _equal_width(stack[:, :, 0], bins), bins)


def ece_equal_mass(items: np.ndarray, bins: int = 15) -> float:
    """ECE with `bins` bins of (nearly) equal item counts, by ascending confidence: robust to the
    pile-up of confidences near 1 that leaves most equal-width bins empty."""
    index = np.empty(len(items), np.int64)
    index[np.argsort(items[:, 0], kind="stable")] = np.arange(len(items)) * bins // max(len(items), 1)
    return _ece(items, index, bins)


def ece_equal_mass_stack(stack: np.ndarray, bins: int = 15) -> np.ndarray:
    n = stack.shape[1]
    index = np.empty(stack.shape[:2], np.int64)
    order = np.argsort(stack[:, :, 0], axis=1, kind="stable")
    np.put_along_axis(index, order, np.broadcast_to(np.arange(n) * bins // max(n, 1), index.shape), axis=1)
    return _ece_stack(stack, index, bins)


def nll(items: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels."""
    return float(-items[:, 2].mean())


def nll_stack(stack: np.ndarray) -> np.ndarray:
    return -stack[:, :, 2].mean(1)


def shifted(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Each flattened square image moved one pixel up or down (seeded), zero-filled: a dataset
    shift that keeps every pixel on the data's grid and puts no new ink in the edge columns."""
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"calibration: ece_shift moves square images, but inputs have {x.shape[1]} features; "
                         f"set shift: false for a task whose inputs are not images")
    images = x.reshape(-1, side, side)
    blank = torch.zeros_like(images[:, :1])
    up, down = torch.cat([images[:, 1:], blank], 1), torch.cat([blank, images[:, :-1]], 1)
    go_up = torch.rand(len(x), generator=torch.Generator().manual_seed(seed)) < 0.5
    return torch.where(go_up[:, None, None], up, down).reshape(x.shape)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE with `bins` equal-width bins of the max-softmax confidence (probabilities in, float out)."""
    return ece(calibration_columns(probs.double().log(), labels), bins)


@dataclass
class Calibration:
    """Is the model's confidence honest? Catches successors that are sure when they should not be
    (sharpened softmax, temperature games, overfitting) even when their accuracy is unchanged:
    ECE with equal-width and equal-mass bins, and NLL, on the gate's probe split; and ECE on the
    same digits moved one pixel up or down, where even a good model is wrong on more than half, so
    confidence that does not fall shows on ~130 items instead of the ~7 a good model gets wrong in
    distribution (calibration under dataset shift, Ovadia et al. 2019).

    Selected in `configs/gate/*.yaml` under `probes:` with
    `- _target_: evaluators.probes.Calibration`.
    """

    bins: int = 15  # the usual 15 (Guo et al. 2017); ~15 items a bin on 225 probe items
    # Tolerances vs the spread of honest models (range over 16 seeds of tests/redteam.py's GOOD recipe):
    ece_tolerance: float = 0.03  # honest range 0.015
    ece_mass_tolerance: float = 0.03  # honest range 0.015
    nll_tolerance: float = 0.05  # honest range 0.026 (0.077..0.103); temperature 0.1 adds 0.19..0.42
    shift_tolerance: float = 0.07  # honest range 0.055 (0.296..0.351); temperature 0.1 adds ~0.2
    shift: bool = True  # also read ece_shift (square image inputs only)
    seed: int = 0  # draws each digit's shift direction, once: every model sees the same inputs
    name: str = "calibration"

    def check_task(self, shape: TaskShape) -> None:
        """ECE and NLL read any inputs; `ece_shift` moves square images."""
        if self.shift and not reads(shape, "square"):
            raise cannot_read(self.name, "reads ece_shift on square images moved a pixel", shape,
                              "set its shift: false (gate=tokens does)")

    def measure(self, model: nn.Module, data: DataView, reference: nn.Module) -> list[Readout]:
        split = data["probe"]

        def columns(x: torch.Tensor) -> np.ndarray:
            return calibration_columns(torch.log_softmax(logits(model, x).double(), 1), split.y)
        items = columns(split.x)
        width, width_stack = partial(ece, bins=self.bins), partial(ece_stack, bins=self.bins)
        readouts = [
            statistic_readout(f"{self.name}/ece", items, width, False, self.ece_tolerance,
                              f"ECE ({self.bins} equal-width bins)", width_stack),
            statistic_readout(f"{self.name}/ece_mass", items, partial(ece_equal_mass, bins=self.bins), False,
                              self.ece_mass_tolerance, f"ECE ({self.bins} equal-mass bins)",
                              partial(ece_equal_mass_stack, bins=self.bins)),
            statistic_readout(f"{self.name}/nll", items, nll, False, self.nll_tolerance,
                              "negative log-likelihood", nll_stack),
        ]
        if self.shift:
            readouts.append(statistic_readout(f"{self.name}/ece_shift", columns(shifted(split.x, self.seed)),
                                              width, False, self.shift_tolerance,
                                              f"ECE ({self.bins} equal-width bins), digits moved a pixel",
                                              width_stack))
        return readouts
