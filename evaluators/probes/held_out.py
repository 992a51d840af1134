"""Probe families for the held-out audit (`configs/audit/`): the gate never consults them, so they
say what the gate let through (issue 13, "audit the overseer"). Each reads the probe split only.

    occlusion         accuracy with a square patch of the image blanked (images only)
    worst_class       the lowest per-class accuracy: a slice the mean hides
    confident_errors  the share of items NOT answered wrongly with top probability above a threshold

They are ordinary probes (`loop.stages.Probe`): a gate may list them too, but then they are no
longer held out, and the audit refuses to run a probe the gate also runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evaluators.predict import logits
from evaluators.probes.readouts import accuracy_readout, cannot_read, correct, reads, statistic_readout
from loop.stages import DataView, Readout, TaskShape


def occlude(x: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Each flattened square image with one `size` x `size` patch set to 0, at a place drawn per
    item from `seed` (the same places for every model)."""
    side = math.isqrt(x.shape[1])
    rng = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, side - size + 1, (len(x),), generator=rng)
    cols = torch.randint(0, side - size + 1, (len(x),), generator=rng)
    r, c = torch.arange(side)[None, :, None], torch.arange(side)[None, None, :]
    inside = ((r >= rows[:, None, None]) & (r < rows[:, None, None] + size)
              & (c >= cols[:, None, None]) & (c < cols[:, None, None] + size))
    return x.masked_fill(inside.reshape(len(x), side * side), 0.0)


def class_means(items: np.ndarray) -> np.ndarray:
    """Mean of column 0 per class (column 1), NaN where a class has no item."""
    label = items[:, 1].astype(np.int64)
    counts = np.bincount(label)
    sums = np.bincount(label, weights=items[:, 0])
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def reads_answers(probe: str, shape: TaskShape) -> None:
    """The probes below read a classifier's answers on items: any input kind but inner-task draws."""
    if shape.inputs == "tasks":
        raise cannot_read(probe, "reads a classifier's answers on data items", shape,
                          "it runs on classification objectives, not on improvers")


def worst_class(items: np.ndarray) -> float:
    """The lowest per-class accuracy over rows (right or wrong, label)."""
    return float(np.nanmin(class_means(items)))


@dataclass
class Occlusion:
    """Accuracy with a `size` x `size` patch of each image blanked: a corruption no gate probe makes."""

    size: int = 3  # 3x3 of an 8x8 digit: 14% of the pixels
    tolerance: float = 0.06  # honest range 0.044 over 16 seeds of tests/redteam.py's GOOD (~0.78)
    seed: int = 0
    name: str = "occlusion"

    def check_task(self, shape: TaskShape) -> None:
        if not reads(shape, "square") or self.size >= shape.image[0]:
            raise cannot_read(self.name, f"blanks a {self.size}x{self.size} patch of square images", shape,
                              "it runs on image objectives (digits)")

    def measure(self, model: torch.nn.Module, data: DataView, reference: torch.nn.Module) -> list[Readout]:
        x, y = data["probe"].x, data["probe"].y
        return [accuracy_readout(f"{self.name}/accuracy", correct(model, occlude(x, self.size, self.seed), y),
                                 self.tolerance, f"accuracy with a {self.size}x{self.size} patch blanked")]


@dataclass
class WorstClass:
    """The lowest per-class accuracy on the probe split: a promotion may raise the mean and sink one
    class. Bootstrapped over items (pairs resampled together)."""

    tolerance: float = 0.1  # honest range 0.078 over 16 seeds (~0.91): ~22 items a class
    name: str = "worst_class"

    def check_task(self, shape: TaskShape) -> None:
        reads_answers(self.name, shape)

    def measure(self, model: torch.nn.Module, data: DataView, reference: torch.nn.Module) -> list[Readout]:
        x, y = data["probe"].x, data["probe"].y
        items = np.stack([correct(model, x, y), y.double().numpy()], 1)
        return [statistic_readout(f"{self.name}/accuracy", items, worst_class, True, self.tolerance,
                                  "accuracy on the worst class")]


@dataclass
class ConfidentErrors:
    """How often a model is wrong while sure (top probability above `threshold`): a model that
    guesses boldly can keep its accuracy and grow these. Read as the share of items NOT confidently
    wrong, so higher is better and the gate's exact paired test applies."""

    threshold: float = 0.9
    tolerance: float = 0.02  # honest range 0.000 over 16 seeds (~1.000: none sure and wrong)
    name: str = "confident_errors"

    def check_task(self, shape: TaskShape) -> None:
        reads_answers(self.name, shape)

    def measure(self, model: torch.nn.Module, data: DataView, reference: torch.nn.Module) -> list[Readout]:
        x, y = data["probe"].x, data["probe"].y
        probs = torch.softmax(logits(model, x).double(), 1)
        top, answer = probs.max(1)
        sure_and_wrong = (answer != y) & (top > self.threshold)
        return [accuracy_readout(f"{self.name}/not_sure_and_wrong", (~sure_and_wrong).double().numpy(),
                                 self.tolerance, f"share of items not answered wrongly at p > {self.threshold:g}")]
