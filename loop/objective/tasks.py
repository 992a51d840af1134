"""Objectives: what is improved, on which data, under which budget, and how metrics become a score.

`objective=digits` (the default) uses scikit-learn's bundled 8x8 digits (1,797 images, no
download); `objective=modular_arithmetic` and `objective=sequence` generate token tasks in-process.
Each is split once with a fixed seed into the five splits the stages see:

    train  -> execution            proxy -> evaluator        audit, probe -> control gate
    truth  -> the hidden truth evaluator (feeds only the ledger and the report)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from loop.stages import Budget, Split, Task

if TYPE_CHECKING:
    import torch

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


def _check_count(key: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"objective.{key} must be a whole number >= {low}, got {value!r}")
    return value


def split_items(x: "torch.Tensor", y: "torch.Tensor", fractions: Mapping[str, float],
                seed: int) -> dict[str, Split]:
    """Shuffle the items once with `seed` and cut them into the five splits by `fractions`; the
    last split takes what rounding leaves. Disjoint by construction."""
    import numpy as np
    import torch

    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    bounds = np.cumsum([0] + [round(fractions[s] * len(y)) for s in SPLITS])
    bounds[-1] = len(y)
    return {name: Split(x[order[a:b]], y[order[a:b]]) for name, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}


@dataclass
class Generated:
    """What every objective shares: budget, split fractions, split seed and the compute penalty,
    checked when the objective is built."""

    budget: Budget
    fractions: Mapping[str, float]
    split_seed: int = 0  # fixed, so every run seed sees the same splits
    compute_penalty: float = 0.0
    target: float | None = None  # a speedrun's accuracy target (objective=speedrun): minimise compute to reach it

    def __post_init__(self) -> None:
        if self.target is not None and (isinstance(self.target, bool) or not isinstance(self.target, (int, float))
                                        or not 0 < self.target < 1):
            raise ValueError(f"objective.target must be null or an accuracy strictly between 0 and 1, "
                             f"got {self.target!r}")
        if self.target is not None and self.compute_penalty:
            raise ValueError("objective.target (a speedrun: compute is the score) and objective.compute_penalty "
                             "(compute as a penalty on the proxy) cannot both be set")
        if not isinstance(self.budget, Budget):
            self.budget = Budget(**self.budget)
        self.fractions = _check_fractions(self.fractions)
        if isinstance(self.compute_penalty, bool) or not isinstance(self.compute_penalty, (int, float)) \
                or self.compute_penalty < 0:
            raise ValueError(f"objective.compute_penalty must be a number >= 0, got {self.compute_penalty!r}")


def digits() -> tuple["torch.Tensor", "torch.Tensor"]:
    """scikit-learn's bundled 8x8 digits as (pixels in [0, 1], labels): the 1,797 rows of
    `load_digits()`, read from the file scikit-learn ships (`sklearn/datasets/data/digits.csv.gz`)
    without importing scikit-learn, whose import (scipy with it) is most of a second of start-up."""
    import gzip
    import importlib.util

    import numpy as np
    import torch

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("objective=digits reads scikit-learn's bundled digits: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    x = torch.tensor(table[:, :-1] / 16.0, dtype=torch.float32)  # pixels 0..16 -> 0..1
    return x, torch.tensor(table[:, -1].astype(np.int64), dtype=torch.long)


@dataclass
class Digits(Generated):
    """scikit-learn's bundled 8x8 digits, 10 classes. Selected with `objective=digits`."""

    def prepare(self) -> Task:
        x, y = digits()
        return Task("digits", split_items(x, y, self.fractions, self.split_seed), self.budget,
                    in_features=64, n_classes=10, compute_penalty=float(self.compute_penalty), target=self.target, image=(8, 8))


@dataclass
class ModularArithmetic(Generated):
    """(a + b) mod p: each item is the token pair (a, b), both in [0, p), labelled (a + b) mod p.
    All p*p pairs are split, so the proxy, probe and truth splits hold pairs never trained on:
    the model must learn the operation, not the table (the setting of Power et al. 2022,
    "Grokking"). Chance is 1/p. Selected with `objective=modular_arithmetic`."""

    p: int = 31  # the modulus: p*p items, p classes; 31 gives 961 items, as many as digits' ~1,800 halves

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count("p", self.p, 2)

    def prepare(self) -> Task:
        import torch

        a, b = torch.meshgrid(torch.arange(self.p), torch.arange(self.p), indexing="ij")
        x = torch.stack([a.flatten(), b.flatten()], 1)
        y = (x[:, 0] + x[:, 1]) % self.p
        return Task("modular_arithmetic", split_items(x, y, self.fractions, self.split_seed), self.budget,
                    in_features=2, n_classes=self.p, compute_penalty=float(self.compute_penalty), target=self.target,
                    inputs="tokens", vocab=self.p, seq_len=2)


SEQUENCE_MODES = ("copy", "reverse")


@dataclass
class SequenceTask(Generated):
    """Copy or reverse a random token sequence, one answer per item.

    The loop's evaluators, the gate's paired tests and its probes expect one integer label per
    item (`y` of shape (N,)), so an item does not ask for the whole output sequence: it is the
    sequence s (`length` tokens in [0, vocab)) followed by one query token naming a position q
    (token vocab + q), and its label is the token at position q of the output, s[q] to copy,
    s[length - 1 - q] to reverse. Inputs are thus `length + 1` tokens from a vocabulary of
    `vocab + length`; there are `vocab` classes (chance 1/vocab). The (s, q) pairs are drawn
    without repeats from the split seed, so no item is in two splits. Selected with
    `objective=sequence` (`objective.mode=reverse` to reverse).
    """

    mode: str = "copy"  # copy or reverse
    length: int = 6  # tokens per sequence
    vocab: int = 8  # distinct tokens (and classes)
    items: int = 2000  # (sequence, query) items in all splits together

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in SEQUENCE_MODES:
            raise ValueError(f"objective.mode={self.mode!r} is not one of {list(SEQUENCE_MODES)}")
        _check_count("length", self.length, 1)
        _check_count("vocab", self.vocab, 2)
        _check_count("items", self.items, len(SPLITS))
        distinct = self.vocab ** self.length * self.length
        if self.items > distinct:
            raise ValueError(f"objective.items={self.items} is more than the {distinct} distinct items of "
                             f"vocab={self.vocab}, length={self.length}; lower items or raise vocab or length")

    def prepare(self) -> Task:
        import numpy as np
        import torch

        rng = np.random.default_rng(self.split_seed)
        seen: set[bytes] = set()
        rows: list[np.ndarray] = []
        while len(rows) < self.items:  # draw (sequence, query) rows, keeping the first of any repeat
            draws = np.concatenate([rng.integers(0, self.vocab, (self.items, self.length)),
                                    rng.integers(0, self.length, (self.items, 1))], 1)
            for row in draws:
                if row.tobytes() not in seen and len(rows) < self.items:
                    seen.add(row.tobytes())
                    rows.append(row)
        items = torch.from_numpy(np.stack(rows))
        sequence, query = items[:, :-1], items[:, -1]
        position = query if self.mode == "copy" else self.length - 1 - query
        y = sequence[torch.arange(len(items)), position]
        x = torch.cat([sequence, (self.vocab + query)[:, None]], 1)
        return Task("sequence", split_items(x, y, self.fractions, self.split_seed), self.budget,
                    in_features=self.length + 1, n_classes=self.vocab,
                    compute_penalty=float(self.compute_penalty), target=self.target, inputs="tokens",
                    vocab=self.vocab + self.length, seq_len=self.length + 1)
