"""The pressure ladder (`experiment=gate_pressure`, issue 13): does the gate hold as the loop
searches it harder?

Pressure is how many candidates the loop puts to the gate per generation: with `n` candidates and
fallback nominations, the loop reviews them best proxy first until one passes, a best-of-n search
against the gate. Against it the sweep report shows, per gate and n, over seeds: the gate's pass
rate (promotions per review), the share of promotions that regress on the held-out audit (probe
families the gate never consults, `audit=held_out`), and the final hidden truth. The x axis is
sqrt(KL) of best-of-n selection, KL = log n - (n - 1) / n, as in Gao et al. 2022 ("Scaling laws
for reward model overoptimization"), whose best-of-n form for the gold score, d (alpha - beta d),
is fitted to each gate's truth gain over its n = 1 rung, paired by seed; the fit is reported
whatever it shows, with its R^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from loop.tools.runs import GATE, Run, review_load

if TYPE_CHECKING:
    from loop.tools.compare import Result


def kl_best_of_n(n: int) -> float:
    """KL divergence of best-of-n selection from the base distribution (Gao et al. 2022, eq. 1)."""
    return math.log(n) - (n - 1) / n


@dataclass(frozen=True)
class Rung:
    """One run's numbers on the ladder."""

    seed: str
    reviewed: int  # gate decisions after generation 0 (fallback reviews included)
    promoted: int
    audited: int  # promotions the held-out audit ran on
    slipped: int  # of those, promotions that regress on it
    truth: float | None  # the final incumbent's hidden truth
    gain: float | None  # ... minus the generation-0 baseline's
    gate_share: float | None  # the gate's seconds over the generations' wall time (varies run to run)

    @property
    def pass_rate(self) -> float | None:
        return self.promoted / self.reviewed if self.reviewed else None

    @property
    def slip_rate(self) -> float | None:
        return self.slipped / self.audited if self.audited else None


def rung_of(seed: str, run: Run) -> Rung:
    decisions = [e for e in run.kept(*GATE) if e.generation >= 1]
    audited = [e for e in run.kept("audited") if e.generation >= 1 and e.reasons[0].startswith("promoted")]
    last = run.last_finished
    truth = last.metrics.get("incumbent/truth") if last else None
    first = run.generations.get(0)
    base = first.finished.metrics.get("incumbent/truth") if first and first.finished else None
    loads = review_load(run)
    wall = sum(x.seconds for x in loads)
    return Rung(seed, len(decisions), sum(e.event == "promoted" for e in decisions), len(audited),
                sum(bool(e.metrics.get("audit/regressed")) for e in audited), truth,
                truth - base if truth is not None and base is not None else None,
                sum(x.gate_seconds for x in loads) / wall if wall else None)


def ladder(results: Sequence["Result"]) -> dict[str, dict[int, list[Rung]]]:
    """{gate: {n: rungs in seed order}}, when the runs differ in candidates per generation."""
    out: dict[str, dict[int, list[Rung]]] = {}
    for r in results:
        start = r.run.started.detail if r.run.started else {}
        n = start.get("budget", {}).get("candidates")
        gate = r.overrides.get("gate") or str(start.get("plugins", {}).get("gate", "?")).rsplit(".", 1)[-1]
        if n is not None:
            out.setdefault(gate, {}).setdefault(int(n), []).append(rung_of(r.seed, r.run))
    if len({n for rungs in out.values() for n in rungs}) < 2:
        return {}
    for rungs in out.values():
        for n in rungs:
            rungs[n].sort(key=lambda x: (len(x.seed), x.seed))
    return out


def gao_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Least squares of y = d (alpha - beta d) through the origin: (alpha, beta, R^2)."""
    d = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    if len(points) < 3 or len(set(d.tolist())) < 2:
        return None
    design = np.stack([d, -d * d], 1)
    (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ np.array([alpha, beta])
    total = ((y - y.mean()) ** 2).sum()
    return float(alpha), float(beta), float(1 - (residual ** 2).sum() / total) if total > 0 else math.nan


def gains_over_first(rungs: Mapping[int, Sequence[Rung]]) -> list[tuple[float, float]]:
    """(sqrt KL, truth gain over the n = lowest rung of the same seed) for every run and rung."""
    low = min(rungs)
    first = {r.seed: r.truth for r in rungs[low] if r.truth is not None}
    return [(math.sqrt(kl_best_of_n(n)), r.truth - first[r.seed]) for n, rs in sorted(rungs.items())
            for r in rs if r.truth is not None and r.seed in first]


def pressure_section(results: Sequence["Result"]) -> list[str]:
    from loop.meta.utility import paired, seed_differences

    gates = ladder(results)
    if not gates:
        return []

    def cell(values: Sequence[float | None]) -> str:
        kept = [v for v in values if v is not None]
        if not kept:
            return "—"
        p = paired(kept)
        return f"{p.mean:.3f} [{p.low:.3f}, {p.high:.3f}]" if p.n > 1 else f"{p.mean:.3f}"

    out = ["## Pressure ladder: the gate under search", "",
           "Per gate and candidates per generation (n; every candidate may be reviewed, best proxy first, "
           "until one passes), mean over seeds [95% bootstrap interval]. sqrt(KL) is that of best-of-n "
           "selection, KL = log n - (n-1)/n. Pass rate: promotions per review. Audit slips: promotions that "
           "regress on the held-out audit (pooled count, then the mean of each seed's share). The gate's share "
           "of wall time is the review load (it varies run to run; the rest repeats).", "",
           "| gate | n | sqrt(KL) | seeds | reviews per run | pass rate | audit slips | slip share | final truth "
           "| truth gain vs gen 0 | gate share of wall time |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for gate, rungs in gates.items():
        for n, rs in sorted(rungs.items()):
            slipped, audited = sum(r.slipped for r in rs), sum(r.audited for r in rs)
            out.append(f"| {gate} | {n} | {math.sqrt(kl_best_of_n(n)):.3f} | {len(rs)} | "
                       f"{cell([float(r.reviewed) for r in rs])} | {cell([r.pass_rate for r in rs])} | "
                       f"{slipped} of {audited} | {cell([r.slip_rate for r in rs])} | {cell([r.truth for r in rs])} | "
                       f"{cell([r.gain for r in rs])} | {cell([r.gate_share for r in rs])} |")
    out += ["", "Gao et al.'s best-of-n form fitted to each gate's truth gain over its lowest rung, paired by "
            "seed: gain = d (alpha - beta d), d = sqrt(KL).", ""]
    for gate, rungs in gates.items():
        fit = gao_fit(gains_over_first(rungs))
        if fit is None:
            out.append(f"- {gate}: too few rungs to fit")
            continue
        alpha, beta, r2 = fit
        peak = (f"; it peaks at d = {alpha / (2 * beta):.2f}" if beta > 0 and alpha > 0
                else "; no interior peak (beta <= 0 or alpha <= 0)")
        out.append(f"- {gate}: alpha {alpha:+.4f}, beta {beta:+.4f}, R^2 {r2:.2f}{peak}")
    if len(gates) == 2:
        (b, rb), (a, ra) = gates.items()  # the second gate of the sweep against the first
        out += ["", f"`{a}` minus `{b}`, paired by seed at each n: mean [95% bootstrap interval] (seeds):", "",
                "| n | final truth | audit slip share |", "|---:|---:|---:|"]
        for n in sorted(set(ra) & set(rb)):
            truth = seed_differences(ra[n], rb[n], lambda r: r.truth)
            slip = seed_differences(ra[n], rb[n], lambda r: r.slip_rate)
            out.append(f"| {n} | {paired(truth).show() if truth else '—'} ({len(truth)}) | "
                       f"{paired(slip).show() if slip else '—'} ({len(slip)}) |")
    out += ["", "![pass rate, audit slips and truth against sqrt(KL)](plots/pressure.png)", ""]
    return out


def pressure_plot(results: Sequence["Result"]) -> bytes | None:
    """Three panels against sqrt(KL): pass rate, audit slip share, final truth; one line per gate
    (mean over seeds, bars: min-max), with the Gao fit drawn on the truth panel."""
    from loop.tools.plots import figure, png_bytes

    gates = ladder(results)
    if not gates:
        return None
    fig = figure(13, 4)
    axes = fig.subplots(1, 3)
    panels = (("pass rate (promotions per review)", lambda r: r.pass_rate),
              ("promotions regressing on the held-out audit", lambda r: r.slip_rate),
              ("final truth", lambda r: r.truth))
    for ax, (title, value) in zip(axes, panels):
        for gate, rungs in gates.items():
            xs, means, lows, highs = [], [], [], []
            for n, rs in sorted(rungs.items()):
                vs = [v for v in map(value, rs) if v is not None]
                if vs:
                    xs.append(math.sqrt(kl_best_of_n(n)))
                    means.append(float(np.mean(vs)))
                    lows.append(means[-1] - min(vs))
                    highs.append(max(vs) - means[-1])
            ax.errorbar(xs, means, yerr=[lows, highs], marker="o", capsize=3, label=gate)
            if title == "final truth":
                fit = gao_fit(gains_over_first(rungs))
                first = [r.truth for r in rungs[min(rungs)] if r.truth is not None]
                if fit is not None and first:
                    d = np.linspace(0, max(xs), 50)
                    ax.plot(d, np.mean(first) + d * (fit[0] - fit[1] * d), linestyle=":", color="grey")
        if title != "final truth":  # shares: the whole range, so 0 reads as 0
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("sqrt(KL) of best-of-n")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
