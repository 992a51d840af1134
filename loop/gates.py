"""Control gates: may the nominee be promoted; should the loop pause. Never see the truth split.

`gate=probes` (the default) runs each probe on the probe split for nominee and incumbent and
vetoes a nominee that is worse than the incumbent by more than the probe's tolerance; after
`max_consecutive_vetoes` vetoes in a row it pauses the loop until a person runs
`rsi-loop-approve`. `gate=off` promotes every nominee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from loop.stages import DataView, Decision, Past, Scored


@dataclass
class Off:
    """No oversight: every nominee is promoted. Selected with `gate=off`."""

    def review(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
               history: Sequence[Past]) -> Decision:
        return Decision("promote", {}, ("gate is off: no probes were run",))


def vetoes_in_a_row(history: Sequence[Past]) -> int:
    """Vetoes at the end of the history; a pause (or anything else) ends the streak."""
    count = 0
    for past in reversed(history):
        if past.decision != "vetoed":
            break
        count += 1
    return count


@dataclass
class Probes:
    """Veto a nominee that regresses on any probe beyond its tolerance. Selected with `gate=probes`."""

    probes: Sequence[Any] = field(default_factory=list)
    split: str = "probe"
    max_consecutive_vetoes: int = 3  # a tripwire: this many vetoes in a row pause the loop (0: never)

    def __post_init__(self) -> None:
        if isinstance(self.max_consecutive_vetoes, bool) or not isinstance(self.max_consecutive_vetoes, int) \
                or self.max_consecutive_vetoes < 0:
            raise ValueError(f"gate.max_consecutive_vetoes must be a whole number >= 0, "
                             f"got {self.max_consecutive_vetoes!r}")
        names = [p.name for p in self.probes]
        if len(set(names)) != len(names):
            raise ValueError(f"gate.probes must have distinct names, got {names}")

    def review(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
               history: Sequence[Past]) -> Decision:
        split = data[self.split]
        values: dict[str, float] = {}
        failed, reasons = [], []
        for probe in self.probes:
            mine = probe.measure(nominee.successor.model, split)
            theirs = probe.measure(incumbent.successor.model, split)
            values[f"probe/{probe.name}"] = mine
            values[f"probe/{probe.name}/incumbent"] = theirs
            regression = (theirs - mine) if probe.higher_is_better else (mine - theirs)
            verdict = "regresses" if regression > probe.tolerance else "ok"
            reasons.append(f"{probe.name}: {probe.label} {mine:.3f} vs incumbent {theirs:.3f} "
                           f"(tolerance {probe.tolerance:g}): {verdict}")
            if verdict == "regresses":
                failed.append(probe.name)
        if not failed:
            return Decision("promote", values, tuple(reasons))
        streak = vetoes_in_a_row(history) + 1
        if self.max_consecutive_vetoes and streak >= self.max_consecutive_vetoes:
            reasons.append(f"tripwire: {streak} vetoes in a row (limit {self.max_consecutive_vetoes}): "
                           f"the loop pauses until a person approves")
            return Decision("pause", values, tuple(reasons))
        return Decision("veto", values, (f"vetoed on {', '.join(failed)}", *reasons))
