"""Paired comparisons of two models on the same items: is the nominee worse than the incumbent by
more than a tolerance, beyond what noise explains?

- accuracies: an exact conditional (McNemar-style) binomial test on the discordant items;
- any other metric (ECE, AUROC, ...): a paired bootstrap, resampling the same items for both;
- many metrics at once: Holm's step-down correction, so more probes do not mean more false vetoes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class Comparison:
    regression: float  # how much worse the nominee is (metric units; > 0 is worse)
    p: float  # one-sided p-value of "regression > tolerance"


def accuracy_regression(nominee: np.ndarray, incumbent: np.ndarray, tolerance: float) -> Comparison:
    """Exact test that the nominee's accuracy is lower by more than `tolerance`.

    With n items, b items only the incumbent gets right and c only the nominee gets right, the drop
    is (b - c) / n. Given m = b + c discordant items, b ~ Binomial(m, pi); a drop of exactly
    `tolerance` means pi0 = 1/2 + n * tolerance / (2m). McNemar's test is the case tolerance = 0.
    """
    nominee, incumbent = np.asarray(nominee, bool), np.asarray(incumbent, bool)
    n = len(nominee)
    b = int(np.sum(incumbent & ~nominee))
    c = int(np.sum(nominee & ~incumbent))
    regression = (b - c) / n if n else 0.0
    m = b + c
    if m == 0:
        return Comparison(regression, 1.0)
    pi0 = 0.5 + n * tolerance / (2 * m)
    if pi0 >= 1.0:  # even losing every discordant item would not exceed the tolerance
        return Comparison(regression, 1.0)
    return Comparison(regression, float(binomtest(b, m, max(pi0, 0.0), alternative="greater").pvalue))


def bootstrap_regression(statistic: Callable[[np.ndarray], float], nominee: np.ndarray,
                         incumbent: np.ndarray, tolerance: float, higher_is_better: bool,
                         rounds: int = 1000, seed: int = 0, first: int = 100,
                         clearly_not: float = 0.2) -> Comparison:
    """Paired bootstrap test that the nominee's metric is worse by more than `tolerance`.

    Rows of `nominee` and `incumbent` belong to the same items; each round resamples the same rows
    for both. p is the share of rounds in which the regression is at most the tolerance
    (the percentile test: p < alpha iff the one-sided (1 - alpha) lower bound exceeds it).

    Sequential: after `first` rounds a p of at least `clearly_not` (far above any veto threshold)
    is final; only the rest go on to all `rounds`. Most comparisons of honest models stop early.
    """
    sign = 1.0 if higher_is_better else -1.0
    regression = sign * (statistic(incumbent) - statistic(nominee))
    rows = np.random.default_rng(seed).integers(0, len(nominee), size=(rounds, len(nominee)))
    resampled: list[float] = []
    for r in rows:
        resampled.append(sign * (statistic(incumbent[r]) - statistic(nominee[r])))
        done = len(resampled)
        if done == first and done < rounds:
            p = (1 + int(np.sum(np.nan_to_num(resampled) <= tolerance))) / (done + 1)
            if p >= clearly_not:
                return Comparison(float(regression), p)
    p = (1 + int(np.sum(np.nan_to_num(resampled) <= tolerance))) / (len(resampled) + 1)
    return Comparison(float(regression), p)


def holm(pvalues: Mapping[str, float], alpha: float) -> dict[str, float]:
    """Holm's step-down procedure: the rejected hypotheses, each with the threshold it beat."""
    rejected: dict[str, float] = {}
    ordered = sorted(pvalues.items(), key=lambda kv: (kv[1], kv[0]))
    for i, (name, p) in enumerate(ordered):
        threshold = alpha / (len(ordered) - i)
        if p >= threshold:
            break
        rejected[name] = threshold
    return rejected
