"""The plots of a run's report (`plots/*.png`), drawn from the parsed ledger (`loop.tools.runs.Run`).

matplotlib is imported only here and only when a plot is drawn; each plot uses a Figure with an
Agg canvas, not pyplot, so no global backend state leaks between runs or processes.

Drawing is most of what writing a report costs, so the report's own plots avoid matplotlib's
expensive paths (measured, on a 10-generation run): no layout engine (`layout="constrained"`
measures every tick label of every panel again and draws the figure twice per save; `place` sizes
fixed margins from the tick labels' text instead), one scatter per kind of point rather than per
point, and one draw straight into an RGB PNG (`png_bytes`).
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

from loop.tools.runs import GATE, Run, blockers, lineage

COLORS = {"promoted": "tab:green", "vetoed": "tab:red", "paused": "tab:orange"}
MARKERS = {"promoted": "^", "vetoed": "x", "paused": "s"}
DPI = 110


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes at `DPI`. One draw on its Agg canvas, saved as RGB with fast
    compression: `savefig` draws a figure with a layout engine twice, the alpha channel of an
    opaque figure only doubles the encoder's work, and zlib level 1 is ~25% faster than the
    default for ~5% larger files."""
    from PIL import Image

    fig.set_dpi(DPI)
    fig.canvas.draw()
    rgba = fig.canvas.buffer_rgba()
    buf = io.BytesIO()
    Image.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1).convert("RGB").save(
        buf, format="png", compress_level=1)
    return buf.getvalue()


def figure(width: float, height: float) -> Any:
    """A Figure on its own Agg canvas: no pyplot, so no global backend state, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def place(fig: Any, axes: Sequence[Any], cols: int = 1, top: float = 0.4, hgap: float = 0.0) -> None:
    """Fixed margins in inches, where `layout="constrained"` would measure every artist (costly).
    Titles, x tick labels and x labels have a fixed height; only the y tick labels' width depends
    on the data, so the left margin and the gap between columns are sized from their longest text
    (about 0.085 in a character at the default 10 pt, plus the y label and paddings). Call it once
    the data are plotted; `hgap` is the gap between rows."""
    chars = max((len(s) for ax in axes
                 for s in ax.yaxis.get_major_formatter().format_ticks(ax.yaxis.get_majorticklocs())), default=0)
    left = 0.42 + 0.085 * chars
    right, bottom = 0.2, 0.55
    width, height = fig.get_size_inches()
    rows = math.ceil(len(axes) / cols)
    panel_w = (width - left - right - (cols - 1) * left) / cols
    panel_h = (height - top - bottom - (rows - 1) * hgap) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=left / panel_w, hspace=hgap / panel_h)


def whole_numbers(axis: Any) -> None:
    """Generations are whole numbers: integer ticks, and only one tick (not 1.900 ... 2.100) when a
    panel shows a single generation."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def empty_panel(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def scores_plot(run: Run) -> bytes:
    import numpy as np

    fig = figure(8, 4.8)
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
    whole_numbers(ax.xaxis)
    ax.legend(fontsize="small")
    place(fig, [ax])
    return png_bytes(fig)


def gate_plot(run: Run) -> bytes:
    events = [e for e in run.kept(*GATE) if e.generation >= 1]
    # one panel per probe: "probe/<probe>" is its worst regression in units of its tolerance
    # ("probe/<probe>/<metric>" keys hold the raw values, listed in report.md's reasons)
    probes = sorted({k[len("probe/"):] for e in events for k in e.metrics if k.count("/") == 1
                     and k.startswith("probe/")})
    if not probes:
        fig = figure(6, 2.5)
        empty_panel(fig.subplots(), "gate ran no probes (gate=off?)")
        return png_bytes(fig)
    cols = min(3, len(probes))
    rows = math.ceil(len(probes) / cols)
    fig = figure(max(4.5 * cols, 8), 3.3 * rows)  # at least as wide as the title
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(probes))]  # no hidden spare panels
    for ax, probe in zip(axes, probes):
        # (generation, nominee, incumbent or None, decision) of every gate event that ran this probe
        points = [(e.generation, e.metrics[f"probe/{probe}"], e.metrics.get(f"probe/{probe}/incumbent"), e.event)
                  for e in events if e.metrics.get(f"probe/{probe}") is not None]
        paired = [(g, nominee, incumbent) for g, nominee, incumbent, _ in points if incumbent is not None]
        if paired:
            gens, nominees, incumbents = zip(*paired)
            ax.vlines(gens, incumbents, nominees, color="lightgrey", zorder=1)
            ax.scatter(gens, incumbents, facecolors="none", edgecolors="grey", zorder=2, label="incumbent")
        for decision in dict.fromkeys(d for *_, d in points):  # legend in order of first appearance
            at = [(g, nominee) for g, nominee, _, d in points if d == decision]
            ax.scatter(*zip(*at), marker=MARKERS[decision], color=COLORS[decision], s=50, zorder=3,
                       label=f"nominee ({decision})")
        if any(e.metrics.get(f"probe/{probe}/incumbent") is None for e in events):  # summary panel
            ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="tolerance")
        ax.set_title(probe)
        whole_numbers(ax.xaxis)
    for i, ax in enumerate(axes):  # axis labels on the outer panels only: every panel shares them
        if i % cols == 0:
            ax.set_ylabel("worst regression / tolerance")
        if i + cols >= len(axes):
            ax.set_xlabel("generation")
    # one legend for every panel (the same marks mean the same thing in each), under the title
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    across = max(1, min(len(legend), 2 * cols))  # entries per row: about two fit in a panel's width
    height = fig.get_figheight()
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="upper center", ncols=across, fontsize="small",
                   frameon=False, bbox_to_anchor=(0.5, 1 - 0.38 / height))
    fig.suptitle("Gate probes: the nominee's worst regression per probe (above 1: beyond tolerance)",
                 y=1 - 0.1 / height)  # 0.1 in from the top, above the legend and the panel titles at any height
    place(fig, axes, cols, top=0.75 + 0.2 * math.ceil(len(legend) / across), hgap=0.8)
    return png_bytes(fig)


def goodhart_plot(run: Run) -> bytes:
    fig = figure(8, 5.5)
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
    whole_numbers(bottom.xaxis)
    top.legend(fontsize="small")
    bottom.legend(fontsize="small")
    place(fig, [top, bottom], hgap=0.15)  # shared x: only the bottom panel has tick labels
    return png_bytes(fig)


def lineage_plot(run: Run) -> bytes:
    fig = figure(8, 4.8)
    ax = fig.subplots()
    nodes = lineage(run)
    if not nodes:
        empty_panel(ax, "no successor reached the gate yet")
        return png_bytes(fig)
    nan = lambda v: math.nan if v is None else v  # noqa: E731  (no point, not a crash)
    where = {n.successor: (n.generation, nan(n.truth)) for n in nodes if n.lives}
    # links to the parent: one line per style, the segments split by nan (a break in the line)
    links: dict[str, tuple[list[float], list[float]]] = {}
    for n in nodes:
        if n.parent in where:
            xs, ys = links.setdefault("lives" if n.lives else n.decision, ([], []))
            xs += [where[n.parent][0], n.generation, math.nan]
            ys += [where[n.parent][1], nan(n.truth), math.nan]
    for kind, (xs, ys) in links.items():
        ax.plot(xs, ys, zorder=1, color="tab:green" if kind == "lives" else COLORS[kind],
                linestyle="-" if kind == "lives" else ":")
    for decision in dict.fromkeys(n.decision for n in nodes):  # legend in order of first appearance
        at = [n for n in nodes if n.decision == decision]
        ax.scatter([n.generation for n in at], [nan(n.truth) for n in at], s=50, zorder=2, label=decision,
                   marker="o" if decision == "baseline" else MARKERS[decision],
                   color="black" if decision == "baseline" else COLORS[decision])
    for n in nodes:
        if n.lives:  # centred above its point, so the last id stays inside the fixed margins
            ax.annotate(n.successor[:8], (n.generation, nan(n.truth)), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize="x-small")
    ax.set(title="Lineage: each successor the gate decided on, linked to the incumbent it came from",
           xlabel="generation", ylabel="truth")
    whole_numbers(ax.xaxis)
    ax.legend(fontsize="small")
    place(fig, [ax])
    return png_bytes(fig)


def front_plot(run: Run) -> bytes:
    """`promotion=pareto`: each generation's candidates on proxy against training compute (counted, log
    scale), its front (no other candidate better on both) joined by a line, the nominee ringed."""
    from loop.promotion.pareto import compute_of, front

    fig = figure(8, 4.8)
    ax = fig.subplots()
    generations = [g for g in run.done if g.number >= 1 and g.of("evaluated")]
    if not generations:
        empty_panel(ax, "no generation after 0 finished yet")
        return png_bytes(fig)
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i, g in enumerate(generations):
        trained = {e.successor: e.metrics for e in g.of("trained")}
        points = [(compute_of(trained.get(e.successor, {})), e.metrics.get("proxy"), e.successor)
                  for e in g.of("evaluated") if e.metrics.get("proxy") is not None]
        color = cmap(i / max(1, len(generations) - 1))
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, color=color, alpha=0.5)
        on = sorted((points[j] for j in front([[p[1], -p[0]] for p in points])), key=lambda p: p[0])
        ax.plot([p[0] for p in on], [p[1] for p in on], "-o", ms=4, color=color, label=f"generation {g.number}")
        nominated = {e.successor for e in g.of("nominated")}
        ringed = [p for p in points if p[2] in nominated]
        ax.scatter([p[0] for p in ringed], [p[1] for p in ringed], s=90, facecolors="none", edgecolors="red", zorder=3)
    if all(x > 0 for line in ax.collections for x, _ in line.get_offsets()):
        ax.set_xscale("log")
    ax.set(title="Pareto fronts: proxy against training compute (red ring: the nominee)",
           xlabel="training compute (multiply-adds)", ylabel="proxy")
    ax.legend(fontsize="x-small", ncol=2)
    place(fig, [ax])
    return png_bytes(fig)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """How a person reads a descriptor's bins: "< 1e+07", "1e+07-2e+07", ">= 4e+07"."""
    if not edges:
        return ["all"]
    return [f"< {edges[0]:.3g}", *(f"{a:.3g}-{b:.3g}" for a, b in zip(edges, edges[1:])), f">= {edges[-1]:.3g}"]


def archive_plot(run: Run) -> bytes:
    """`promotion=map_elites`: the last archive as a heatmap of its elites' proxy over the first two
    descriptors (a cell of more descriptors shows the best of the elites it folds), with coverage and
    QD-score in the title."""
    from loop.tools.runs import archive

    fig = figure(7, 5)
    ax = fig.subplots()
    found = archive(run)
    if not found:
        empty_panel(ax, "no archive recorded yet")
        return png_bytes(fig)
    names = list(found["descriptors"])[:2]
    edges = [found["descriptors"][n] for n in names] + [[]] * (2 - len(names))
    grid = [[math.nan] * (len(edges[0]) + 1) for _ in range(len(edges[1]) + 1)]
    for key, elite in found["elites"].items():
        cell = [int(i) for i in key.split(",")] + [0]
        x, y = cell[0], cell[1] if len(names) > 1 else 0
        grid[y][x] = elite["proxy"] if math.isnan(grid[y][x]) else max(grid[y][x], elite["proxy"])
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    low, high = image.get_clim()
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if not math.isnan(value):  # dark text on the bright (yellow) end of viridis, light on the dark end
                light = high > low and (value - low) / (high - low) > 0.6
                ax.text(x, y, f"{value:.3f}", ha="center", va="center", fontsize="small",
                        color="black" if light else "white")
    ax.set_xticks(range(len(grid[0])), bin_labels(edges[0]), fontsize="small")
    ax.set_yticks(range(len(grid)), bin_labels(edges[1]), fontsize="small")
    metrics = run.last_finished.metrics if run.last_finished else {}
    ax.set(xlabel=names[0], ylabel=names[1] if len(names) > 1 else "",
           title=f"Archive of elites (proxy): coverage {metrics.get('archive/coverage', math.nan):.0%}, "
                 f"QD-score {metrics.get('archive/qd_score', math.nan):.3f}")
    fig.colorbar(image, ax=ax, label="elite proxy")
    place(fig, [ax])
    return png_bytes(fig)


PLOTS = {"scores.png": scores_plot, "goodhart.png": goodhart_plot, "gate.png": gate_plot,
         "lineage.png": lineage_plot}
