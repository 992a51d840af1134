"""Promotion: which candidate, if any, is nominated to replace the incumbent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from loop.stages import Nomination, Scored


@dataclass
class Greedy:
    """Nominate the best-scoring candidate if it beats the incumbent by more than `margin`.
    Selected with `promotion=greedy` (the default). With `fallbacks` > 0, a vetoed nominee is
    followed by the next best (the engine asks again without it), so one gamed candidate that wins
    every nomination cannot block an honest improvement behind it."""

    margin: float = 0.005  # about one item in 270 on the proxy split: don't promote on a tie
    fallbacks: int = 0  # after a veto, nominate the next best (if it still beats the margin) this many times

    def __post_init__(self) -> None:
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or self.margin < 0:
            raise ValueError(f"promotion.margin must be a number >= 0, got {self.margin!r}")
        if isinstance(self.fallbacks, bool) or not isinstance(self.fallbacks, int) or self.fallbacks < 0:
            raise ValueError(f"promotion.fallbacks must be a whole number >= 0, got {self.fallbacks!r}")

    def nominate(self, scored: Sequence[Scored], incumbent: Scored) -> Nomination:
        if not scored:
            return Nomination(None, ("no candidate finished training",))
        best = max(scored, key=lambda s: s.score)  # first of equals: deterministic
        gain = best.score - incumbent.score
        if gain > self.margin:
            return Nomination(best, (f"score {best.score:.4f} beats incumbent {incumbent.score:.4f} "
                                     f"by {gain:+.4f} (margin {self.margin:g})",))
        return Nomination(None, (f"best score {best.score:.4f} does not beat incumbent "
                                 f"{incumbent.score:.4f} by more than the margin {self.margin:g} ({gain:+.4f})",))
