"""Objectives: what is improved, on which data, under which budget, and how metrics become a score.

`objective=digits` (the default) uses scikit-learn's bundled 8x8 digits (1,797 images, no
download), split once with a fixed seed into the five splits the stages see:

    train  -> execution            proxy -> evaluator        audit, probe -> control gate
    truth  -> the hidden truth evaluator (feeds only the ledger and the report)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

from loop.stages import Budget, Split, Task

SPLITS = ("train", "proxy", "audit", "probe", "truth")


def split_hash(split: Split) -> str:
    digest = hashlib.sha256()
    for tensor in (split.x, split.y):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if set(fractions) != set(SPLITS):
        raise ValueError(f"objective.fractions must name exactly the splits {list(SPLITS)}, got {sorted(fractions)}")
    if any(not isinstance(v, (int, float)) or v <= 0 for v in fractions.values()):
        raise ValueError(f"objective.fractions must all be positive numbers, got {dict(fractions)}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"objective.fractions must sum to 1, they sum to {total:g}")
    return {k: float(fractions[k]) for k in SPLITS}


@dataclass
class Digits:
    """scikit-learn's bundled 8x8 digits, 10 classes. Selected with `objective=digits`."""

    budget: Budget
    fractions: Mapping[str, float]
    split_seed: int = 0  # fixed, so every run seed sees the same splits
    compute_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.budget, Budget):
            self.budget = Budget(**self.budget)
        self.fractions = _check_fractions(self.fractions)
        if isinstance(self.compute_penalty, bool) or not isinstance(self.compute_penalty, (int, float)) \
                or self.compute_penalty < 0:
            raise ValueError(f"objective.compute_penalty must be a number >= 0, got {self.compute_penalty!r}")

    def prepare(self) -> Task:
        import numpy as np
        import torch
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.data / 16.0, dtype=torch.float32)  # pixels 0..16 -> 0..1
        y = torch.tensor(data.target, dtype=torch.long)
        order = torch.from_numpy(np.random.default_rng(self.split_seed).permutation(len(y)))
        bounds = np.cumsum([0] + [round(self.fractions[s] * len(y)) for s in SPLITS])
        bounds[-1] = len(y)
        splits = {name: Split(x[order[a:b]], y[order[a:b]])
                  for name, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}
        return Task("digits", splits, self.budget, in_features=64, n_classes=10,
                    compute_penalty=float(self.compute_penalty))
