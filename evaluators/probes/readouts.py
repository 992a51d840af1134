"""What the probes share: per-item columns (float64 numpy, what a `Readout` carries), the
statistics that recompute a metric from any resample of those rows, and the two Readout shapes.

Statistics are module-level functions (or `functools.partial` of them): deterministic, no torch.
Each has a `*_stack` twin that computes it for a whole stack of resamples (R, n, k) at once, with
the same floating-point operations in the same order, so the gate's paired bootstrap (up to 1000
rounds for each of two models) makes a few numpy calls instead of thousands of Python ones; the
probes hand both to `statistic_readout`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from evaluators.predict import logits
from loop.gate.paired import Vectorised
from loop.stages import Readout

if TYPE_CHECKING:
    from loop.stages import TaskShape

DIGIT_IMAGE = (8, 8)  # what `evaluators.marks` stamps on: flattened 8x8 digits


def reads(shape: "TaskShape", needs: str) -> bool:
    """Whether a task's inputs are what a probe's perturbation needs: "features" (any float
    features), "square" (a flattened square image), or "digits" (8x8 images, for the marks)."""
    if needs == "digits":
        return shape.inputs == "features" and tuple(shape.image) == DIGIT_IMAGE
    if needs == "square":
        return shape.inputs == "features" and len(shape.image) == 2 and shape.image[0] == shape.image[1]
    return shape.inputs == "features"


class CannotRead(ValueError):
    """A probe cannot perturb the task's inputs: which probe, what it does, how to fix it."""

    def __init__(self, probe: str, reading: str, shape: "TaskShape", fix: str):
        self.probe, self.reading, self.fix = probe, reading, fix
        super().__init__(f"probe {probe} {reading}, but objective={shape.objective or '?'} gives "
                         f"{shape.describe()}; {fix}")

    def brief(self) -> str:
        """The sentence without the task's inputs, for a list of several probes about one task."""
        return f"{self.probe} {self.reading}: {self.fix}"


def cannot_read(probe: str, reading: str, shape: "TaskShape", fix: str) -> CannotRead:
    """The error a probe raises at start when it cannot perturb the task's inputs."""
    return CannotRead(probe, reading, shape, fix)


def correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """1.0 where the model's top class is the label, else 0.0."""
    return (logits(model, x).argmax(1) == y).double().numpy()


def true_class_probability(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The softmax probability the model gives each item's label (float64, so 1 - p keeps digits)."""
    probs = torch.softmax(logits(model, x).double(), 1)
    return probs[torch.arange(len(y)), y].numpy()


def column_gap(items: np.ndarray) -> float:
    """mean(column 0) - mean(column 1): two readings of the same items, e.g. clean vs flagged."""
    means = items[:, :2].mean(0)
    return float(means[0] - means[1])


def column_gap_stack(stack: np.ndarray) -> np.ndarray:
    means = stack[:, :, :2].mean(1)
    return means[:, 0] - means[:, 1]


def per_resample_bincount(index: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """`np.bincount(index[r], weights[r], minlength=bins)` for every row r of (R, n) arrays, in one
    call: row r's bins are shifted to r * bins. Each bin still adds its items in row order, so the
    sums are bit for bit those of the per-row calls."""
    shifted = (index + np.arange(len(index))[:, None] * bins).ravel()
    flat = np.bincount(shifted, None if weights is None else weights.ravel(), len(index) * bins)
    return flat.reshape(len(index), bins)


def group_means(items: np.ndarray) -> np.ndarray:
    """Mean of column 0 per group (column 1 holds 0 or 1); NaN for a group a resample lacks."""
    group = items[:, 1].astype(np.int64)
    counts = np.bincount(group, minlength=2)
    sums = np.bincount(group, weights=items[:, 0], minlength=2)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def group_means_stack(stack: np.ndarray) -> np.ndarray:
    """(R, 2): `group_means` of every resample."""
    group = stack[:, :, 1].astype(np.int64)
    counts = per_resample_bincount(group, 2)
    sums = per_resample_bincount(group, 2, stack[:, :, 0])
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def group_gap(items: np.ndarray) -> float:
    """mean(group 0) - mean(group 1) over rows (value, group); 0.0 if a resample lacks a group."""
    means = group_means(items)
    return float(np.nan_to_num(means[0] - means[1]))


def group_gap_stack(stack: np.ndarray) -> np.ndarray:
    means = group_means_stack(stack)
    return np.nan_to_num(means[:, 0] - means[:, 1])


def worst_group(items: np.ndarray) -> float:
    """The lower of the two groups' means over rows (value, group), ignoring a missing group."""
    return float(np.nanmin(group_means(items)))


def worst_group_stack(stack: np.ndarray) -> np.ndarray:
    means = group_means_stack(stack)
    return np.fmin(means[:, 0], means[:, 1])  # fmin, like nanmin, ignores a NaN


def accuracy_readout(metric: str, items: np.ndarray, tolerance: float, label: str) -> Readout:
    """A per-item right/wrong readout; the gate compares two of them with an exact paired test."""
    return Readout(metric, float(items.mean()), "accuracy", items, True, float(tolerance), label)


def statistic_readout(metric: str, items: np.ndarray, statistic: Callable[[np.ndarray], float],
                      higher_is_better: bool, tolerance: float, label: str,
                      stack: Callable[[np.ndarray], np.ndarray] | None = None) -> Readout:
    """Any other metric; `statistic(items)` is its value, and the gate bootstraps rows of `items`.
    `stack`, the statistic of each resample in a stack (R, n, k), lets the gate do so in one call."""
    if stack is not None:
        statistic = Vectorised(statistic, stack)
    return Readout(metric, statistic(items), "statistic", items, higher_is_better, float(tolerance),
                   label, statistic)
