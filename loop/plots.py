"""The plots of a run's report (`plots/*.png`), drawn from the parsed ledger (`loop.report.Run`).

matplotlib is imported only here and only when a plot is drawn; each plot uses a Figure with an
Agg canvas, not pyplot, so no global backend state leaks between runs or processes.
"""

from __future__ import annotations

import io
import math
from typing import Any

from loop.report import GATE, Run, blockers, lineage

COLORS = {"promoted": "tab:green", "vetoed": "tab:red", "paused": "tab:orange"}
MARKERS = {"promoted": "^", "vetoed": "x", "paused": "s"}


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def empty_panel(ax: Any, text: str) -> None:
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
        empty_panel(ax, "no generation evaluated yet")
        return png_bytes(fig)
    x = np.array([g.number for g in done])
    col = lambda key: np.array([g.finished.metrics.get(key) for g in done], dtype=float)  # noqa: E731
    truth = col("incumbent/truth")  # None becomes nan: a gap in the line, not a crash
    ax.scatter([e.generation for e in evaluated], [e.metrics.get("proxy") for e in evaluated],
               s=10, color="grey", alpha=0.35, label="candidate proxy")
    ax.plot(x, col("best/proxy"), ":*", ms=8, color="tab:purple", label="best candidate proxy")
    ax.plot(x, col("best/truth"), ":*", ms=8, color="tab:purple", markerfacecolor="none", alpha=0.7,
            label="best candidate truth")
    ax.plot(x, col("incumbent/proxy"), "-o", ms=3, color="tab:blue", label="incumbent proxy")
    ax.plot(x, truth, "-o", ms=3, color="black", label="incumbent truth")
    for decision in GATE:
        at = [i for i, g in enumerate(done) if g.decision == decision and g.number >= 1]
        if at:
            ax.scatter(x[at], truth[at], marker=MARKERS[decision], s=80, color=COLORS[decision],
                       zorder=3, label=decision)
    for e in run.kept("vetoed", "paused"):  # the gate timeline: what stopped each nominee
        if e.generation >= 1:
            ax.axvline(e.generation, color=COLORS[e.event], alpha=0.25, linewidth=4, zorder=0)
            ax.annotate(", ".join(blockers(e)), (e.generation, 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize="x-small", color=COLORS[e.event], ha="right", va="bottom")
    ax.set(title="Proxy vs truth per generation", xlabel="generation", ylabel="score")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.legend(fontsize="small")
    return png_bytes(fig)


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
        empty_panel(fig.subplots(), "gate ran no probes (gate=off?)")
        return png_bytes(fig)
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
    return png_bytes(fig)


def goodhart_plot(run: Run) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    if not run.done:
        empty_panel(top, "no generation finished yet")
        bottom.set_axis_off()
        return png_bytes(fig)
    nan = lambda v: math.nan if v is None else v  # noqa: E731  (a gap in the line, not a crash)
    for ax, key, style, label in ((top, "gap/incumbent", "-o", "Goodhart gap (incumbent proxy - truth)"),
                                  (top, "gap/selection", "--s", "selection gap (nominee - generation mean)"),
                                  (top, "truth/regret", "-^", "truth regret (best truth so far - incumbent)"),
                                  (bottom, "spearman/proxy_truth", "-o", "Spearman(proxy, truth), rolling")):
        points = run.series(key)
        ax.plot([g for g, _ in points], [nan(v) for _, v in points], style, ms=4, label=label)
    top.axhline(0, color="grey", linewidth=0.8)
    bottom.axhline(0, color="grey", linewidth=0.8)
    bottom.set_ylim(-1.05, 1.05)
    top.set(title="Does the proxy still track the truth?", ylabel="score difference")
    bottom.set(xlabel="generation", ylabel="rank correlation")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend(fontsize="small")
    bottom.legend(fontsize="small")
    return png_bytes(fig)


def lineage_plot(run: Run) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    nodes = lineage(run)
    if not nodes:
        empty_panel(ax, "no successor reached the gate yet")
        return png_bytes(fig)
    where = {n.successor: (n.generation, n.truth) for n in nodes if n.lives}
    labelled: set[str] = set()
    for n in nodes:
        truth = math.nan if n.truth is None else n.truth
        if n.parent in where:
            px, py = where[n.parent]
            ax.plot([px, n.generation], [math.nan if py is None else py, truth], zorder=1,
                    color="tab:green" if n.lives else COLORS[n.decision], linestyle="-" if n.lives else ":")
        color = "black" if n.decision == "baseline" else COLORS[n.decision]
        ax.scatter([n.generation], [truth], marker="o" if n.decision == "baseline" else MARKERS[n.decision],
                   color=color, s=50, zorder=2, label=None if n.decision in labelled else n.decision)
        labelled.add(n.decision)
        if n.lives:
            ax.annotate(n.successor[:8], (n.generation, truth), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small")
    ax.set(title="Lineage: each successor the gate decided on, linked to the incumbent it came from",
           xlabel="generation", ylabel="truth")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    return png_bytes(fig)


PLOTS = {"scores.png": scores_plot, "goodhart.png": goodhart_plot, "gate.png": gate_plot,
         "lineage.png": lineage_plot}
