"""Paired comparisons of two models on the same items: is the nominee worse than the incumbent by
more than a tolerance, beyond what noise explains?

- accuracies: an exact conditional (McNemar-style) binomial test on the discordant items;
- any other metric (ECE, AUROC, ...): a paired bootstrap, resampling the same items for both;
- many metrics at once: Holm's step-down correction, so more probes do not mean more false vetoes.

A bootstrapped statistic is any `statistic(items) -> float`. Wrapped in `Vectorised` with a second
form that takes a whole stack of resamples, it is evaluated in a few numpy calls instead of one
Python call per round and model (what the shipped probes do; a plain function still works).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Vectorised:
    """A statistic in two forms: `one(items) -> float` on (n, k) rows, and `many(stack) -> (R,)`
    on R resamples of them at once, (R, n, k). Called, it is `one`, so it fits wherever a plain
    statistic does. `many` must agree with `one` row for row; the probes' tests check that."""

    one: Callable[[np.ndarray], float]
    many: Callable[[np.ndarray], np.ndarray]

    def __call__(self, items: np.ndarray) -> float:
        return self.one(items)


STACK_BYTES = 1 << 26  # resamples are evaluated in chunks of at most this many bytes (64 MiB)


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
    from scipy.stats import binomtest  # half a second to import: paid when a gate first compares, not at start-up

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
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"a paired bootstrap needs a whole number of rounds >= 1, got {rounds!r}")
    sign = 1.0 if higher_is_better else -1.0
    regression = sign * (statistic(incumbent) - statistic(nominee))
    rows = resample_rows(seed, rounds, len(nominee))
    if isinstance(statistic, Vectorised):
        resampled = _vectorised_rounds(statistic.many, nominee, incumbent, rows, sign, tolerance,
                                       first, clearly_not)
    else:
        resampled = _rounds(statistic, nominee, incumbent, rows, sign, tolerance, first, clearly_not)
    return Comparison(float(regression), _p(resampled, tolerance))


@lru_cache(maxsize=8)
def resample_rows(seed: int, rounds: int, n: int) -> np.ndarray:
    """The rows each round resamples. Every test of a review (and of the next) draws the same few
    matrices, and drawing one costs as much as a vectorised round of tests: memoised, read-only."""
    rows = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    rows.flags.writeable = False
    return rows


def _p(resampled, tolerance: float) -> float:
    return (1 + int(np.sum(np.nan_to_num(resampled) <= tolerance))) / (len(resampled) + 1)


def _rounds(statistic, nominee, incumbent, rows, sign, tolerance, first, clearly_not) -> list[float]:
    """The resampled regressions, one round at a time, stopping after `first` if clearly fine."""
    resampled: list[float] = []
    for r in rows:
        resampled.append(sign * (statistic(incumbent[r]) - statistic(nominee[r])))
        if len(resampled) == first < len(rows) and _p(resampled, tolerance) >= clearly_not:
            break
    return resampled


def _vectorised_rounds(many, nominee, incumbent, rows, sign, tolerance, first, clearly_not) -> np.ndarray:
    """The same regressions as `_rounds` (same rows, same stopping rule), a block of rounds at a time."""
    step = max(1, STACK_BYTES // max(incumbent.nbytes, 1))  # a resample is as large as the items

    def regressions(block: np.ndarray) -> np.ndarray:
        chunks = [block[i:i + step] for i in range(0, len(block), step)]
        # np.take: the same stack as incumbent[c], copied several times faster
        return np.concatenate([sign * (many(np.take(incumbent, c, 0)) - many(np.take(nominee, c, 0)))
                               for c in chunks])  # never empty: a bootstrap has at least one round

    if not 0 < first < len(rows):
        return regressions(rows)
    early = regressions(rows[:first])
    if _p(early, tolerance) >= clearly_not:
        return early
    return np.concatenate([early, regressions(rows[first:])])


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
