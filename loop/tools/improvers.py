"""Reports one level up (successor=improver, experiment=recursive_improver), from ledgers alone.

- `run_section`: in one run's report, meta-train and held-out imp@k of the incumbent improver per
  outer generation with intervals over the task draws, its held-out difference from generation 0
  paired by draw, the compute spent, and the payback;
- `sweep_section`: in a sweep's report, the arms side by side per outer generation with intervals
  over seeds, their difference paired by seed, and compute and payback per arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from loop.ledger import Event
from loop.tools.fmt import counts, finite, num, short
from loop.tools.runs import Run

if TYPE_CHECKING:
    from loop.tools.compare import Result


def per_draw(metrics: Mapping[str, float], prefix: str) -> list[float]:
    """The per-draw imp@k values an improver's meta-utility recorded (`proxy/imp/0`, ...), in order."""
    values, i = [], 0
    while f"{prefix}/imp/{i}" in metrics:
        values.append(metrics[f"{prefix}/imp/{i}"])
        i += 1
    return values


@dataclass(frozen=True)
class Payback:
    """What the meta level spent on selection, and how many held-out tasks pay it back."""

    selection: float  # optimizer steps of every improver's meta-train measurement
    gain: float  # the final incumbent's held-out imp@k minus generation 0's
    reference: float  # generation 0's held-out imp@k
    per_task: float  # generation 0's optimizer steps per held-out task
    final_per_task: float  # the final incumbent's

    @property
    def tasks(self) -> float:
        """Held-out tasks for the selection compute to pay for itself, to first order: a gain of
        `gain` is worth gain / (reference / per_task) steps of generation 0's improver per task (its
        own gain per step, taken as linear); infinite without a gain."""
        if self.gain <= 0 or self.reference <= 0 or self.per_task <= 0:
            return math.inf
        return self.selection / (self.gain * self.per_task / self.reference)

    def words(self) -> str:
        return "never (no held-out gain over generation 0)" if math.isinf(self.tasks) else \
            f"{self.tasks:,.0f} held-out tasks"


def payback_of(run: Run) -> Payback | None:
    """An improver run's payback, from its ledger; None for a run of models."""
    scores = run.scores
    if not run.done or run.baseline_id not in scores or "truth/imp/0" not in scores[run.baseline_id]:
        return None
    base, final = scores[run.baseline_id], scores.get(run.done[-1].finished.successor, {})
    per_task = lambda m: m.get("truth/inner_steps", 0) / max(len(per_draw(m, "truth")), 1)  # noqa: E731
    return Payback(sum(e.metrics.get("proxy/inner_steps", 0) for e in run.kept("evaluated")),
                   final.get("truth", 0.0) - base.get("truth", 0.0), base.get("truth", 0.0), per_task(base),
                   per_task(final))


def spent(events: Iterable[Event], prefix: str) -> str:
    """Inner successors trained / optimizer steps that `events`' measurements spent."""
    events = list(events)
    return (f"{sum(e.metrics.get(f'{prefix}/inner_trained', 0) for e in events):,.0f} / "
            f"{sum(e.metrics.get(f'{prefix}/inner_steps', 0) for e in events):,.0f}")


def run_section(run: Run) -> list[str]:
    """One level up (successor=improver): meta-train and held-out meta-utility per outer generation
    with intervals over the task draws, the held-out difference from generation 0 paired by draw,
    and the compute the meta level spent."""
    from loop.meta.utility import paired

    scores = run.scores
    if payback_of(run) is None:
        return []
    base = scores[run.baseline_id]
    base_truth = per_draw(base, "truth")
    evaluated = run.kept("evaluated")
    out = ["## Improvers: meta-utility on meta-train and held-out tasks", "",
           "Each successor here is an improver; its score is **imp@k**, the truth its fresh inner loops "
           "gained in k inner generations, averaged over task draws: meta-train draws for the proxy (what "
           "selection sees), **held-out** families for the truth (what no selection sees). Intervals: 95% "
           "bootstrap over the draws; the difference from generation 0 is paired draw by draw.", "",
           "| gen | incumbent | meta-train imp@k [95% CI] | held-out imp@k [95% CI] | held-out minus generation 0 "
           "[95% CI] | inner successors / steps for selection (cumulative) | for held-out measurement |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for g in run.done:
        m = scores.get(g.finished.successor, {})
        upto = [e for e in evaluated if e.generation <= g.number]
        train, held = paired(per_draw(m, "proxy")), paired(per_draw(m, "truth"))
        diff = paired([a - b for a, b in zip(per_draw(m, "truth"), base_truth)])
        out.append(f"| {g.number} | {short(g.finished.successor)} | {train.show()} | {held.show()} | "
                   f"{'—' if g.finished.successor == run.baseline_id else diff.show()} | "
                   f"{spent(upto, 'proxy')} | {spent(upto, 'truth')} |")
    pay = payback_of(run)
    out += ["", f"Meta-training spent {spent(evaluated, 'proxy')} inner successors / optimizer steps on selection "
                f"(every improver's meta-train measurement). Payback: {pay.words()} (generation 0 gains "
                f"{num(pay.reference)} imp@k with {pay.per_task:,.0f} optimizer steps a task; the final incumbent "
                f"{num(pay.gain, sign=True)} more with {pay.final_per_task:,.0f}).", ""]
    return out


def sweep_section(groups: Mapping[str, Sequence["Result"]]) -> list[str]:
    """Sweeps of improvers (experiment=recursive_improver): per outer generation and group, the
    incumbent's meta-train and held-out imp@k, mean over seeds with a 95% bootstrap interval over
    seeds; with two groups, their difference paired seed by seed; and the compute each spent."""
    from loop.meta.utility import paired

    if not any("truth/imp/0" in m for rs in groups.values() for r in rs for m in r.run.scores.values()):
        return []
    generations = sorted({g.number for rs in groups.values() for r in rs for g in r.run.done})
    out = ["## Improvers: meta-train and held-out imp@k per outer generation", "",
           "The incumbent improver's imp@k (truth its inner loops gained in k inner generations), mean over "
           "seeds [95% bootstrap interval over seeds]. Meta-train: what selection saw; **held-out**: families "
           "no selection saw.", "",
           "| gen | " + " | ".join(f"{name}: meta-train | {name}: held-out" for name in groups) + " |",
           "|---:|" + "---:|---:|" * len(groups)]

    def at(r: "Result", g: int, key: str) -> float | None:
        return dict(r.run.series(f"incumbent/{key}")).get(g)

    for g in generations:
        cells = []
        for runs in groups.values():
            for key in ("proxy", "truth"):
                values = finite(at(r, g, key) for r in runs)
                cells.append(paired(values).show() if values else "—")
        out.append(f"| {g} | " + " | ".join(cells) + " |")
    if len(groups) == 2:
        (a, ra), (b, rb) = groups.items()
        by_seed = {r.seed: r for r in rb}
        pairs = [(r, by_seed[r.seed]) for r in ra if r.seed in by_seed]
        out += ["", f"Held-out imp@k of `{a}` minus `{b}`, paired by seed ({len(pairs)} pairs):", "",
                "| gen | difference [95% CI] | verdict |", "|---:|---:|---|"]
        for g in generations:
            d = [x - y for x, y in ((at(r, g, "truth"), at(q, g, "truth")) for r, q in pairs)
                 if x is not None and y is not None]
            if d:
                diff = paired(d)
                out.append(f"| {g} | {diff.show()} | {diff.words()} |")
    out += ["", "Compute and payback per run, median (min–max) over seeds: optimizer steps of inner loops spent on "
                "selection (meta-train measurements) and on the held-out measurement, and how many held-out "
                "tasks the selection compute takes to pay for itself (per run report; inf: no held-out gain).", "",
            "| group | inner successors for selection | steps for selection | steps for held-out measurement "
            "| payback (held-out tasks) |", "|---|---:|---:|---:|---:|"]
    for name, runs in groups.items():
        def total(r: "Result", key: str) -> float:
            return sum(e.metrics.get(key, 0) for e in r.run.kept("evaluated"))

        paybacks = [p.tasks if math.isinf(p.tasks) else round(p.tasks)
                    for p in map(payback_of, (r.run for r in runs)) if p is not None]
        out.append(f"| {name} | {counts([total(r, 'proxy/inner_trained') for r in runs])} | "
                   f"{counts([total(r, 'proxy/inner_steps') for r in runs])} | "
                   f"{counts([total(r, 'truth/inner_steps') for r in runs])} | "
                   f"{counts(paybacks) if paybacks else '—'} |")
    return out + [""]
