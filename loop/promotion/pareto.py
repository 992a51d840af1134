"""`promotion=pareto`: promote on more than one objective, never on a single scalar alone.

"Better" has more than one dimension: a successor may score higher and cost more. Here each
candidate and the incumbent are points on the configured objectives:

- `proxy`: the evaluator's score (the objective's scalar), higher is better;
- `compute`: its training compute as execution counted it (optimizer steps x rows per batch x 3 x
  the forward multiply-adds of one example), lower is better;
- `parameters`: its size, lower is better;
- `metric/<key>`: a key of the evaluator's extra metrics (`Scores.metrics`), higher is better;
  `-metric/<key>` where lower is better (e.g. `-metric/nll`).

An objective that is none of these is refused when the config is built, before the run writes
anything; a `metric/<key>` the evaluator does not report stops the run at its first nomination,
naming the metrics it does report.

A candidate is on the front when no other candidate, and not the incumbent, is at least as good on
every objective and better on one. It is eligible when it improves on the incumbent beyond a
margin on at least one objective (`margin` on the proxy, absolute; `relative` on any other, as a
fraction of the incumbent's value) and loses at most `floor` of proxy to it. Tie-break, stated:
among eligible front members, the highest proxy; then the lowest compute; then the first proposed.
The gate then reviews the nominee as it would any other. (The gate's probe margins are not among
the objectives: the gate measures them after promotion has nominated, on the nominee alone.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from loop.stages import Nomination, Scored

BUILT_IN = {"proxy": +1, "compute": -1, "parameters": -1}


def compute(s: Scored) -> float:
    """Training compute as execution counted it (the `compute` fact: steps x batch x 3 x forward
    multiply-adds); parameters x steps for a successor trained before that fact existed."""
    return compute_of(s.successor.train)


def compute_of(facts) -> float:
    if facts.get("compute") is not None:
        return float(facts["compute"])
    return float(facts.get("parameters", 0)) * float(facts.get("steps", 0))


def value(s: Scored, objective: str) -> float:
    """The objective's value, signed so that higher is better."""
    name = objective.lstrip("-")
    if name == "proxy":
        raw = s.score
    elif name == "compute":
        raw = compute(s)
    elif name == "parameters":
        raw = float(s.successor.train.get("parameters", 0))
    else:
        raw = float(s.scores.metrics.get(name.removeprefix("metric/"), math.nan))
    sign = BUILT_IN.get(name, -1 if objective.startswith("-") else +1)
    return sign * raw


def check_objective(objective: object) -> str:
    if not isinstance(objective, str) or not (objective in BUILT_IN or (
            objective.lstrip("-").startswith("metric/") and len(objective.lstrip("-")) > len("metric/"))):
        raise ValueError(f"promotion.objectives: {objective!r} is not an objective; use proxy, compute (parameters x "
                         f"steps), parameters, metric/<key> (an evaluator metric, higher is better) or "
                         f"-metric/<key> (lower is better)")
    return objective


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


@dataclass
class Pareto:
    """Nominate a non-dominated candidate that improves on the incumbent somewhere. `promotion=pareto`."""

    objectives: Sequence[str] = field(default_factory=lambda: ["proxy", "compute"])
    margin: float = 0.005  # how much more proxy counts as an improvement (absolute)
    relative: float = 0.1  # how much better another objective must be, as a fraction of the incumbent's
    floor: float = 0.01  # the most proxy a nominee may give up against the incumbent
    fallbacks: int = 0  # after a veto, nominate the next by the tie-break this many times

    def __post_init__(self) -> None:
        if isinstance(self.objectives, str) or len(self.objectives) < 2:
            raise ValueError(f"promotion.objectives must list at least two objectives, got {self.objectives!r}")
        self.objectives = [check_objective(o) for o in self.objectives]
        if "proxy" not in self.objectives:
            raise ValueError(f"promotion.objectives must include proxy (the evaluator's score), got {self.objectives}")
        if len(set(o.lstrip("-") for o in self.objectives)) != len(self.objectives):
            raise ValueError(f"promotion.objectives names an objective twice: {self.objectives}")
        for name in ("margin", "relative", "floor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"promotion.{name} must be a number >= 0, got {v!r}")
        if isinstance(self.fallbacks, bool) or not isinstance(self.fallbacks, int) or self.fallbacks < 0:
            raise ValueError(f"promotion.fallbacks must be a whole number >= 0, got {self.fallbacks!r}")

    def check(self, scored: Sequence[Scored]) -> None:
        """A `metric/<key>` the evaluator does not report is refused by name."""
        for objective in self.objectives:
            key = objective.lstrip("-").removeprefix("metric/")
            if objective not in BUILT_IN and any(key not in s.scores.metrics for s in scored):
                known = sorted({k for s in scored for k in s.scores.metrics})
                raise ValueError(f"promotion.objectives names {objective!r}, but the evaluator reports no metric "
                                 f"{key!r}; it reports: {', '.join(known) or 'none'}")

    def improves(self, s: Scored, incumbent: Scored) -> list[str]:
        """The objectives on which `s` beats the incumbent beyond its margin."""
        better = []
        for objective in self.objectives:
            mine, theirs = value(s, objective), value(incumbent, objective)
            needed = self.margin if objective == "proxy" else self.relative * abs(theirs)
            if mine - theirs > needed:
                better.append(objective)
        return better

    def nominate(self, scored: Sequence[Scored], incumbent: Scored) -> Nomination:
        if not scored:
            return Nomination(None, ("no candidate finished training",))
        self.check([*scored, incumbent])
        points = [[value(s, o) for o in self.objectives] for s in [*scored, incumbent]]
        on_front = [i for i in front(points) if i < len(scored)]
        eligible = [scored[i] for i in on_front if self.improves(scored[i], incumbent)
                    and incumbent.score - scored[i].score <= self.floor]
        where = ", ".join(self.objectives)
        if not eligible:
            return Nomination(None, (f"of {len(on_front)} candidates on the front of ({where}), none improves on the "
                                     f"incumbent beyond the margins without giving up more than {self.floor:g} "
                                     f"proxy",))
        best = max(eligible, key=lambda s: (s.score, -compute(s), -scored.index(s)))
        gains = ", ".join(f"{o} {self.show(best, o)} against {self.show(incumbent, o)}"
                          for o in self.improves(best, incumbent))
        return Nomination(best, (f"on the front of ({where}) with {len(on_front)} of {len(scored)} candidates; "
                                 f"improves {gains}; the highest proxy of {len(eligible)} eligible",))

    @staticmethod
    def show(s: Scored, objective: str) -> str:
        name = objective.lstrip("-")
        raw = s.score if name == "proxy" else abs(value(s, objective))
        return f"{raw:.4f}" if name not in ("compute", "parameters") else f"{raw:,.0f}"
