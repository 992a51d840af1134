"""`report.md` and `plots/*.png` of a run, rebuilt from its `ledger.jsonl` alone.

The ledger is the record of what a run decided, so the report reads nothing else: no config, no
checkpoints, no torch. The same ledger always gives the same `report.md` (no "generated at"
stamp), so `rsi-loop-report` can be rerun at any time, also on a run that is still going.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loop.checkpoints import atomic_write
from loop.config import STAGES
from loop.ledger import Event, read
from loop.state import settle

GATE = ("promoted", "vetoed", "paused")
COLORS = {"promoted": "tab:green", "vetoed": "tab:red", "paused": "tab:orange"}
MARKERS = {"promoted": "^", "vetoed": "x", "paused": "s"}
IN_PROGRESS = "in progress / interrupted"


@dataclass
class Generation:
    """The kept events of one generation. `finished` is its `generation_finished`, or None when
    the run stopped (or is still running) inside it."""

    number: int
    events: list[Event] = field(default_factory=list)
    finished: Event | None = None

    def of(self, *kinds: str) -> list[Event]:
        """Events of these kinds, or all events when no kind is named."""
        return [e for e in self.events if not kinds or e.event in kinds]

    @property
    def decision(self) -> str:
        return self.finished.detail.get("decision", "?") if self.finished else IN_PROGRESS


@dataclass
class Run:
    started: Event | None = None
    finished: Event | None = None
    generations: dict[int, Generation] = field(default_factory=dict)
    human: list[Event] = field(default_factory=list)  # approved and resumed, in ledger order
    abandoned: int = 0  # events of attempts that a `resumed` threw away

    def kept(self, *kinds: str) -> list[Event]:
        return sorted((e for g in self.generations.values() for e in g.of(*kinds)), key=lambda e: e.seq)

    @property
    def last_finished(self) -> Event | None:
        done = [g.finished for g in self.generations.values() if g.finished]
        return done[-1] if done else None


def parse(events: list[Event]) -> Run:
    """Group events by generation, as the engine reads them (`loop.state.settle`): a generation
    counts once its `generation_finished` is written; events of an attempt cut off by a crash and
    dropped by a later `resumed` are counted apart, not twice."""
    settled = settle(events)
    run = Run(abandoned=settled.abandoned)
    for e in settled.run:
        if e.event == "run_started":
            run.started = e
        elif e.event == "run_finished":
            run.finished = e
        else:
            run.human.append(e)
    for number, kept in settled.generations.items():
        run.generations[number] = Generation(number, kept, kept[-1])
    if settled.unfinished:  # never finished: shown as in progress, not silently counted
        number = settled.unfinished[0].generation
        run.generations[number] = Generation(number, settled.unfinished)
    run.generations = dict(sorted(run.generations.items()))
    return run


def status(run: Run) -> str:
    if run.finished:
        return "finished"
    pauses = run.kept("paused")
    if pauses:
        # Paused and nothing after it but its own generation_finished (and maybe an approval):
        # the run stopped on purpose and waits for a person, it did not crash.
        after = [e for e in run.kept() + run.human if e.seq > pauses[-1].seq]
        if all(e.event in ("generation_finished", "approved") for e in after):
            if any(e.event == "approved" for e in after):
                return "approved, waiting to be resumed"
            return "paused awaiting approval"
    return "interrupted (or still running)"


def num(x: Any, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def short(successor: str | None) -> str:
    return f"`{successor[:8]}`" if successor else "—"


def reasons(e: Event) -> str:
    return "; ".join(e.reasons) if e.reasons else "(no reason recorded)"


def time_table(run: Run) -> list[str]:
    """Wall time per stage summed over the finished generations (from `generation_finished`)."""
    totals: dict[str, float] = {}
    for g in run.generations.values():
        for stage, seconds in ((g.finished.detail.get("seconds") or {}) if g.finished else {}).items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    whole = totals.pop("total", 0.0)
    if not whole:
        return []
    rows = [f"| {stage} | {seconds:.2f} | {seconds / whole:.1%} |"
            for stage, seconds in sorted(totals.items(), key=lambda kv: -kv[1])]
    return ["## Where the time goes", "", f"Wall time of the finished generations: {whole:.2f} s.", "",
            "| stage | seconds | share |", "|---|---:|---:|", *rows, ""]


def markdown(name: str, run: Run) -> str:
    start = run.started.detail if run.started else {}
    final = run.finished or run.last_finished
    fm = final.metrics if final else {}
    gen0 = run.generations.get(0)
    base = gen0.finished.metrics.get("incumbent/truth") if gen0 and gen0.finished else None
    if base is None and run.finished:
        base = run.finished.metrics.get("baseline/truth")
    truth = fm.get("incumbent/truth")
    change = truth - base if truth is not None and base is not None else None
    budget = start.get("budget", {})
    gate_events = [e for e in run.kept(*GATE) if e.generation >= 1]
    count = lambda kind: sum(e.event == kind for e in gate_events)  # noqa: E731
    approvals = sum(e.event == "approved" for e in run.human)
    when = (datetime.fromtimestamp(run.started.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            if run.started else "—")

    out = [f"# rsi-loop run `{name}`", ""]
    if run.started and run.started.reasons:
        out += [f"_{run.started.reasons[0]}_", ""]
    out += ["## Summary", "", "| | |", "|---|---|",
            f"| status | **{status(run)}** |",
            f"| started | {when} |",
            f"| seed | {start.get('seed', '—')} |",
            f"| budget | {budget.get('generations', '?')} generations x {budget.get('candidates', '?')} "
            f"candidates x {budget.get('steps', '?')} steps |"]
    plugins = start.get("plugins", {})  # stored with sorted keys: show them in loop order instead
    order = sorted(plugins, key=lambda s: (STAGES.index(s) if s in STAGES else len(STAGES), s))
    out += [f"| {stage} | `{plugins[stage]}` |" for stage in order]
    out += [f"| final incumbent | {short(final.successor) if final else '—'} |",
            f"| incumbent proxy | {num(fm.get('incumbent/proxy'))} |",
            f"| incumbent truth | {num(truth)} |",
            f"| baseline truth (generation 0) | {num(base)} |",
            f"| truth change vs baseline | {num(change, sign=True)} |",
            f"| promotions / vetoes / pauses | {count('promoted')} / {count('vetoed')} / {count('paused')} |",
            f"| approvals | {approvals} |",
            f"| quarantined | {len(run.kept('quarantined'))} |", ""]
    if run.finished and run.finished.reasons:
        out += [f"Finished: {reasons(run.finished)}", ""]

    out += ["## Plots", "", "![proxy and truth per generation](plots/scores.png)", "",
            "![gate probes, nominee vs incumbent](plots/gate.png)", ""]

    out += ["## Generations", "",
            "| gen | decision | incumbent | inc. proxy | inc. truth | best proxy | best truth | trained / quarantined |",
            "|---:|---|---|---:|---:|---:|---:|---|"]
    for g in run.generations.values():
        if g.finished:
            m = g.finished.metrics
            row = [g.decision, short(g.finished.successor), num(m.get("incumbent/proxy")),
                   num(m.get("incumbent/truth")), num(m.get("best/proxy")), num(m.get("best/truth")),
                   f"{int(m.get('trained') or 0)} / {int(m.get('quarantined') or 0)}"]
        else:  # partial: only what the ledger already holds, the incumbent is not settled yet
            best = max(g.of("evaluated"), key=lambda e: e.metrics.get("proxy") or -math.inf, default=None)
            row = [f"_{IN_PROGRESS}_", "—", "—", "—", num(best and best.metrics.get("proxy")),
                   num(best and best.metrics.get("truth")),
                   f"{len(g.of('trained'))} / {len(g.of('quarantined'))} so far"]
        out.append(f"| {g.number} | " + " | ".join(row) + " |")
    if run.abandoned:
        out += ["", f"{run.abandoned} events of attempts abandoned before a resume are not counted."]
    out.append("")

    out += time_table(run)
    out += ["## Gate decisions", ""]
    for e in gate_events:
        out += [f"- generation {e.generation}: **{e.event}** nominee {short(e.successor)} "
                f"vs incumbent {short(e.parent)}"] + [f"  - {r}" for r in e.reasons]
    out += [] if gate_events else ["_No gate decisions after generation 0._"]
    out.append("")

    out += ["## Human decisions", ""]
    human = sorted(run.kept("paused") + run.human, key=lambda e: e.seq)
    for e in human:
        if e.event == "resumed":
            text = (f"restarted generation {e.detail.get('restarted_generation', e.generation)}, "
                    f"discarded {e.detail.get('discarded_events', 0)} events")
        else:
            text = reasons(e)
        out.append(f"- generation {e.generation}: **{e.event}** — {text}")
    out += [] if human else ["_None._"]
    out.append("")

    out += ["## Quarantined", ""]
    quarantined = run.kept("quarantined")
    out += [f"- generation {e.generation}, candidate {e.detail.get('candidate', '?')}: {reasons(e)}"
            for e in quarantined] or ["_None._"]
    out.append("")
    return "\n".join(out)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def scores_plot(run: Run) -> bytes:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # Figure + Agg canvas instead of pyplot: no global backend state, safe in any process.
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [g for g in run.generations.values() if g.finished]
    evaluated = run.kept("evaluated")
    if not done and not evaluated:
        _empty(ax, "no generation evaluated yet")
        return _png(fig)
    x = np.array([g.number for g in done])
    col = lambda key: np.array([g.finished.metrics.get(key) for g in done], dtype=float)  # noqa: E731
    truth = col("incumbent/truth")  # None becomes nan: a gap in the line, not a crash
    ax.scatter([e.generation for e in evaluated], [e.metrics.get("proxy") for e in evaluated],
               s=10, color="grey", alpha=0.35, label="candidate proxy")
    ax.scatter(x, col("best/proxy"), marker="*", s=60, color="tab:purple", label="best candidate proxy")
    ax.plot(x, col("incumbent/proxy"), "-o", ms=3, color="tab:blue", label="incumbent proxy")
    ax.plot(x, truth, "-o", ms=3, color="black", label="incumbent truth")
    for decision in GATE:
        at = [i for i, g in enumerate(done) if g.decision == decision and g.number >= 1]
        if at:
            ax.scatter(x[at], truth[at], marker=MARKERS[decision], s=80, color=COLORS[decision],
                       zorder=3, label=decision)
    ax.set(title="Proxy vs truth per generation", xlabel="generation", ylabel="score")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.legend(fontsize="small")
    return _png(fig)


def gate_plot(run: Run) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    events = [e for e in run.kept(*GATE) if e.generation >= 1]
    # one panel per probe: "probe/<probe>" is its worst regression in units of its tolerance
    # ("probe/<probe>/<metric>" keys hold the raw values, listed in report.md's reasons)
    probes = sorted({k[len("probe/"):] for e in events for k in e.metrics if k.count("/") == 1
                     and k.startswith("probe/")})
    if not probes:
        fig = Figure(figsize=(6, 2.5), layout="constrained")
        FigureCanvasAgg(fig)
        _empty(fig.subplots(), "gate ran no probes (gate=off?)")
        return _png(fig)
    cols = min(3, len(probes))
    rows = math.ceil(len(probes) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.3 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, probe in zip(axes, probes):
        labelled: set[str] = set()
        for e in events:
            nominee, incumbent = e.metrics.get(f"probe/{probe}"), e.metrics.get(f"probe/{probe}/incumbent")
            if nominee is None:
                continue
            if incumbent is not None:
                ax.plot([e.generation] * 2, [incumbent, nominee], color="lightgrey", zorder=1)
                ax.scatter([e.generation], [incumbent], facecolors="none", edgecolors="grey", zorder=2,
                           label=None if "incumbent" in labelled else "incumbent")
                labelled.add("incumbent")
            ax.scatter([e.generation], [nominee], marker=MARKERS[e.event], color=COLORS[e.event], s=50,
                       zorder=3, label=None if e.event in labelled else f"nominee ({e.event})")
            labelled.add(e.event)
        if any(e.metrics.get(f"probe/{probe}/incumbent") is None for e in events):  # summary panel
            ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="tolerance")
        ax.set(title=probe, xlabel="generation", ylabel=f"{probe}: worst regression / tolerance")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="x-small")
    for ax in axes[len(probes):]:
        ax.set_axis_off()
    fig.suptitle("Gate probes: the nominee's worst regression per probe (above 1: beyond tolerance)")
    return _png(fig)


def write_report(run_dir: Path | str) -> Path:
    """(Re)build `<run_dir>/report.md` and `<run_dir>/plots/*.png` from `ledger.jsonl`; return the
    report's path. A ledger that is not intact raises `loop.ledger.LedgerError`."""
    run_dir = Path(run_dir)
    run = parse(read(run_dir / "ledger.jsonl"))
    atomic_write(run_dir / "plots" / "scores.png", scores_plot(run))
    atomic_write(run_dir / "plots" / "gate.png", gate_plot(run))
    report = run_dir / "report.md"
    atomic_write(report, markdown(run_dir.resolve().name, run).encode("utf-8"))
    return report
