"""`rsi-loop-report <multirun_dir>`: compare the runs of a sweep, from their ledgers.

A sweep directory holds runs: subdirectories with a `ledger.jsonl`, e.g. Hydra's
`multirun/<date>/<time>/{0,1,...}`. Runs are grouped by the overrides that differ between them
(each run's `.hydra/overrides.yaml`) other than `seed`: the seeds are the repetitions a group's
spread comes from. Per group the report shows the incumbent's truth and proxy per generation
(median and min–max band over seeds), the last Goodhart gap, truth regret, final truth, vetoes and
the probes behind them, generations-to-target, weak-to-strong PGR where runs measured it, and one
plain sentence per comparison saying which group did better and whether that is beyond the seed
spread. Every run's own report is rebuilt on the way.

Like `loop.tools.report`, this reads ledgers (and the overrides a run was started with) and nothing
else, writes `<sweep>/report.md` and `<sweep>/plots/*.png`, and deletes nothing.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from loop.checkpoints import atomic_write
from loop.ledger import LedgerError, read
from loop.tools.plots import empty_panel, png_bytes
from loop.tools.improvers import sweep_section
from loop.tools.pressure import pressure_plot, pressure_section
from loop.tools.fmt import counts, finite, num, pgr, spread, tally
from loop.tools.report import write_report
from loop.tools.runs import Run, hindsight, parse, status, veto_counts, w2s_generations

TARGET = 0.95  # default truth an incumbent must reach to count for generations-to-target
MIN_SEEDS_FOR_TEST = 5  # below this a rank test says little; the ranges are shown instead
NOT_REACHED = math.inf  # generations-to-target of a seed that never reached the target


class SweepError(ValueError):
    """A path that is no sweep directory (bad usage): names the path."""


class BrokenRuns(SweepError):
    """Runs of a sweep whose ledger is not intact: names each run and its first bad line."""


# --- finding and reading the runs ----------------------------------------------------------


def _natural(path: Path) -> tuple:
    """Sort key that puts Hydra's job 2 before job 10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def find_runs(sweep: Path) -> list[Path]:
    """Every directory below `sweep` (not `sweep` itself) that holds a `ledger.jsonl`; a run's own
    subdirectories and hidden ones (`.hydra`) are not searched."""
    runs = []
    for root, dirs, files in os.walk(sweep):
        if Path(root) != sweep and "ledger.jsonl" in files:
            runs.append(Path(root))
            dirs[:] = []
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(runs, key=lambda p: _natural(p.relative_to(sweep)))


def is_sweep(path: Path) -> bool:
    return path.is_dir() and not (path / "ledger.jsonl").is_file() and bool(find_runs(path))


def overrides_of(run_dir: Path) -> dict[str, str]:
    """The `key=value` overrides a run was started with (`.hydra/overrides.yaml`), without Hydra's
    own (`hydra.*`) and without the `+`/`++`/`~` prefixes; {} when the run has no such file."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise SweepError(f"{path} cannot be read ({err}); it should be the list of overrides Hydra wrote") from None
    if not isinstance(items, list):
        raise SweepError(f"{path} should be a list of `key=value` overrides as Hydra writes it, got {items!r:.200}")
    out = {}
    for item in map(str, items):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra."):
            out[key] = value
    return out


@dataclass(frozen=True)
class Result:
    """One run of a sweep: where it is, what it was started with, and its parsed ledger."""

    path: Path
    name: str  # path relative to the sweep directory
    overrides: Mapping[str, str]
    run: Run

    @property
    def seed(self) -> str:
        started = self.run.started.detail.get("seed") if self.run.started else None
        return str(started if started is not None else self.overrides.get("seed", "?"))

    def final(self, key: str) -> float | None:
        last = self.run.last_finished
        return last.metrics.get(key) if last else None

    def reached(self, target: float) -> float:
        """The first generation whose incumbent truth reaches `target`; `NOT_REACHED` if none did."""
        return next((g for g, v in self.run.series("incumbent/truth") if v is not None and v >= target),
                    NOT_REACHED)

    @property
    def vetoes(self) -> int:
        return sum(e.generation >= 1 for e in self.run.kept("vetoed"))

    @property
    def final_compute(self) -> float | None:
        """The final incumbent's training compute (its `trained` event's `compute` fact)."""
        from loop.promotion.pareto import compute_of

        last = self.run.last_finished
        trained = [e for e in self.run.kept("trained") if last and e.successor == last.successor]
        return compute_of(trained[0].metrics) if trained else None

    @property
    def decision_accuracy(self) -> float | None:
        """The share of its generations decided as the hidden truth would have (`runs.hindsight`)."""
        decisions = hindsight(self.run)
        return sum(d.agrees for d in decisions) / len(decisions) if decisions else None

    @property
    def pauses(self) -> int:
        return len(self.run.kept("paused"))

    def w2s(self, key: str) -> float | None:
        """The run's median over its generations of one `w2s/*` metric (where defined)."""
        values = finite(m.get(key) for _, m in w2s_generations(self.run))
        return statistics.median(values) if values else None


def load(sweep: Path) -> list[Result]:
    """Read every run of `sweep`; `SweepError` naming each run whose ledger is not intact."""
    if not sweep.exists():
        raise SweepError(f"{sweep} does not exist")
    if not sweep.is_dir():
        raise SweepError(f"{sweep} is not a directory; give a run directory (with ledger.jsonl) or a "
                         f"multirun directory (whose subdirectories are runs)")
    paths = find_runs(sweep)
    if not paths:
        sweep_file = " (it has a multirun.yaml, but no run has written a ledger yet)" \
            if (sweep / "multirun.yaml").is_file() else ""
        raise SweepError(f"{sweep} is neither a run directory (no ledger.jsonl) nor a multirun directory "
                         f"(no subdirectory holds a ledger.jsonl){sweep_file}")
    results, problems = [], []
    for path in paths:
        try:
            results.append(Result(path, str(path.relative_to(sweep)), overrides_of(path),
                                  parse(read(path / "ledger.jsonl"))))
        except LedgerError as err:
            problems.append(f"{path}: {err}")
    if problems:
        raise BrokenRuns("the ledgers of these runs are not intact, so the sweep is not compared (check them "
                         "with `rsi-loop-verify <run>`; a run killed mid-line resumes with `rsi-loop "
                         "resume=<run>`): " + "; ".join(problems))
    return results


def varying(results: Sequence[Result]) -> list[str]:
    """The override keys whose value differs between runs, other than `seed`, in order of appearance."""
    keys: list[str] = []
    for r in results:
        keys += [k for k in r.overrides if k not in keys]
    return [k for k in keys if k != "seed" and len({r.overrides.get(k) for r in results}) > 1]


def label(overrides: Mapping[str, str], keys: Sequence[str]) -> str:
    """`key=value ...` for these keys (a key a run did not override shows as `key=(default)`)."""
    return " ".join(f"{k}={overrides.get(k, '(default)')}" for k in keys) or "all runs"


def group(results: Sequence[Result]) -> dict[str, list[Result]]:
    """Runs grouped by the overrides that differ between them other than `seed`, in order of first
    appearance; one group `all runs` when nothing but the seed differs."""
    keys = varying(results)
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(label(r.overrides, keys), []).append(r)
    return groups


# --- numbers and sentences -----------------------------------------------------------------


def steps(value: float) -> str:
    return "not reached" if value == NOT_REACHED else f"{value:g}"


def steps_spread(values: Sequence[float]) -> str:
    """Median (min–max) of generations-to-target; a median seed that did not reach it says so."""
    if len(values) == 1 or min(values) == max(values):
        return steps(values[0])
    return f"{steps(statistics.median(values))} ({steps(min(values))}–{steps(max(values))})"


def blocked_by(runs: Sequence[Result]) -> str:
    """Vetoes and pauses per probe (or tripwire, person), summed over the runs."""
    total: dict[str, int] = {}
    for r in runs:
        for name, n in veto_counts(r.run).items():
            total[name] = total.get(name, 0) + n
    return tally(total)


@dataclass(frozen=True)
class Measure:
    """One number per run, compared across groups."""

    name: str  # as it reads in a sentence: "final truth"
    of: Callable[[Result], float | None]
    higher_is_better: bool
    show: Callable[[float], str] = num


def verdict(groups: Mapping[str, Sequence[Result]], measure: Measure) -> str:
    """Which group did better on `measure` (by the median over seeds), and whether the best and the
    runner-up are apart beyond the seed spread (their min–max ranges do not overlap). With at least
    `MIN_SEEDS_FOR_TEST` seeds in both, a two-sided Mann-Whitney U p-value is added."""
    values = {name: [v for v in map(measure.of, runs) if v is not None and not math.isnan(v)]
              for name, runs in groups.items()}
    values = {name: vs for name, vs in values.items() if vs}
    if len(values) < 2:
        return f"On {measure.name} there is nothing to compare (fewer than two groups have a value)."
    sign = 1 if measure.higher_is_better else -1
    ranked = sorted(values, key=lambda name: -sign * statistics.median(values[name]))
    best, second = ranked[0], ranked[1]
    b, s = values[best], values[second]
    mb, ms = statistics.median(b), statistics.median(s)
    describe = lambda name, vs: (f"`{name}` {measure.show(statistics.median(vs))} "  # noqa: E731
                                  f"({measure.show(min(vs))}–{measure.show(max(vs))}, n={len(vs)})")
    if mb == ms:
        return (f"On {measure.name} the medians of `{best}` and `{second}` are equal "
                f"({measure.show(mb)}): no difference to report.")
    of_many = f" (best of {len(values)} groups; runner-up shown)" if len(values) > 2 else ""
    apart = min(b) > max(s) if measure.higher_is_better else max(b) < min(s)
    spread_words = ("the ranges over seeds do not overlap: every seed of the better group beat every seed of "
                    "the other" if apart else "the ranges over seeds overlap")
    sentence = (f"On {measure.name}, {describe(best, b)} did better than {describe(second, s)}{of_many}; "
                f"{spread_words}")
    if min(len(b), len(s)) < MIN_SEEDS_FOR_TEST:
        sentence += ("" if apart else ", so the difference is within the seed spread") + \
            f" (with fewer than {MIN_SEEDS_FOR_TEST} seeds per group no significance test is run)"
        return sentence + "."
    from scipy.stats import mannwhitneyu

    finite_cap = max([v for v in b + s if math.isfinite(v)], default=0.0) + 1  # "not reached" ranks last
    cap = lambda vs: [v if math.isfinite(v) else finite_cap for v in vs]  # noqa: E731
    p = mannwhitneyu(cap(b), cap(s), alternative="two-sided").pvalue
    judged = "unlikely to be seed noise" if p < 0.05 else "within what seed noise gives"
    return sentence + f"; a Mann-Whitney U test finds the difference {judged} (two-sided p = {p:.3g})."


# --- report.md -----------------------------------------------------------------------------


def group_table(groups: Mapping[str, Sequence[Result]], target: float) -> list[str]:
    out = ["| group | seeds | final truth | final proxy | last Goodhart gap | truth regret | decision accuracy | "
           f"generations to truth {target:g} | reached | vetoes / pauses | vetoed / paused by |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, runs in groups.items():
        reached = [r.reached(target) for r in runs]
        out.append(f"| `{name}` | {len(runs)} | {spread(r.final('incumbent/truth') for r in runs)} | "
                   f"{spread(r.final('incumbent/proxy') for r in runs)} | "
                   f"{spread((r.final('gap/incumbent') for r in runs), sign=True)} | "
                   f"{spread(r.final('truth/regret') for r in runs)} | "
                   f"{spread(r.decision_accuracy for r in runs)} | {steps_spread(reached)} | "
                   f"{sum(v != NOT_REACHED for v in reached)}/{len(runs)} | {counts([r.vetoes for r in runs])} / "
                   f"{counts([r.pauses for r in runs])} | "
                   f"{blocked_by(runs)} |")
    return out


def run_table(groups: Mapping[str, Sequence[Result]], target: float) -> list[str]:
    w2s = any(w2s_generations(r.run) for runs in groups.values() for r in runs)
    out = ["| run | group | seed | status | generations | final truth | final proxy | last gap | truth regret | "
           f"gens to {target:g} | vetoes / pauses | vetoed / paused by |" + (" PGR |" if w2s else ""),
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if w2s else "")]
    for name, runs in groups.items():
        for r in runs:
            by = tally(veto_counts(r.run))
            last = f" {pgr(r.w2s('w2s/pgr'))} |" if w2s else ""
            out.append(f"| [`{r.name}`]({Path(r.name, 'report.md').as_posix()}) | `{name}` | {r.seed} | "
                       f"{status(r.run)} | {len(r.run.done)} | {num(r.final('incumbent/truth'))} | "
                       f"{num(r.final('incumbent/proxy'))} | {num(r.final('gap/incumbent'), sign=True)} | "
                       f"{num(r.final('truth/regret'))} | {steps(r.reached(target))} | {r.vetoes} / {r.pauses} | "
                       f"{by} |{last}")
    return out


def markdown(name: str, groups: Mapping[str, Sequence[Result]], target: float) -> str:
    n = sum(map(len, groups.values()))
    out = [f"# rsi-loop sweep `{name}`", "",
           f"{n} runs in {len(groups)} group{'s' * (len(groups) != 1)}, grouped by the overrides that differ "
           "between runs other than `seed`. Numbers are the median (min–max) over a group's seeds, taken at "
           "each run's last finished generation. Each run's own report is linked below.", ""]
    out += ["## Groups", "", *group_table(groups, target), ""]
    final_truth = Measure("final truth", lambda r: r.final("incumbent/truth"), higher_is_better=True)
    to_target = Measure(f"generations to reach truth {target:g} (fewer is better; a seed that never reached "
                        "it counts as not reached)", lambda r: r.reached(target), higher_is_better=False,
                        show=steps)
    decisions = Measure("decision accuracy in hindsight (the share of generations decided as the hidden truth "
                        "would have; each run's report lists the others)", lambda r: r.decision_accuracy,
                        higher_is_better=True)
    out += ["## Which group did better", "", f"- {verdict(groups, final_truth)}",
            f"- {verdict(groups, to_target)}", f"- {verdict(groups, decisions)}", ""]
    from loop.tools.arms import (contamination_section, gate_section, judge_section, promotion_section,
                                 speedrun_sweep_section, w2s_section)

    out += gate_section(groups)
    out += promotion_section(groups)
    out += judge_section(groups)
    out += contamination_section(groups)
    out += speedrun_sweep_section(groups)
    out += w2s_section(groups)
    out += sweep_section(groups)
    out += pressure_section([r for rs in groups.values() for r in rs])
    out += ["## Plots", "", "![incumbent truth per generation, median and min–max over seeds](plots/truth.png)", "",
            "![incumbent proxy per generation](plots/proxy.png)", "",
            "![Goodhart gap of the incumbent per generation](plots/gap.png)", "",
            "![final truth of each seed, per group](plots/final.png)", ""]
    out += ["## Runs", "", *run_table(groups, target), ""]
    return "\n".join(out)


# --- plots ---------------------------------------------------------------------------------


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global backend state
    return fig, fig.subplots()


def band_plot(groups: Mapping[str, Sequence[Result]], key: str, title: str, ylabel: str,
              target: float | None = None) -> bytes:
    """Per group: the median over seeds of `key` per generation, and the min–max band around it."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure((8, 4.8))
    drawn = False
    for i, (name, runs) in enumerate(groups.items()):
        per_gen: dict[int, list[float]] = {}
        for r in runs:
            for g, v in r.run.series(key):
                if v is not None:
                    per_gen.setdefault(g, []).append(v)
        if not per_gen:
            continue
        x = sorted(per_gen)
        color = f"C{i % 10}"
        ax.fill_between(x, [min(per_gen[g]) for g in x], [max(per_gen[g]) for g in x], color=color, alpha=0.2)
        ax.plot(x, [statistics.median(per_gen[g]) for g in x], "-o", ms=3, color=color,
                label=f"{name} (n={len(runs)})")
        drawn = True
    if not drawn:
        empty_panel(ax, f"no run recorded {key}")
        return png_bytes(fig)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    if key.startswith("gap/"):
        ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(title=title, xlabel="generation", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    return png_bytes(fig)


def final_plot(groups: Mapping[str, Sequence[Result]]) -> bytes:
    """Each seed's final truth as a dot, the group's median as a bar: the spread a verdict rests on."""
    fig, ax = _figure((max(5.0, 1.6 * len(groups) + 2), 4.5))
    for i, (name, runs) in enumerate(groups.items()):
        values = finite(r.final("incumbent/truth") for r in runs)
        offsets = [0.25 * (j / max(len(values) - 1, 1) - 0.5) for j in range(len(values))]  # fixed jitter
        ax.scatter([i + o for o in offsets], values, color=f"C{i % 10}", zorder=2)
        if values:
            ax.hlines(statistics.median(values), i - 0.3, i + 0.3, color="black", zorder=3)
    ax.set_xticks(range(len(groups)), [name.replace(" ", "\n") for name in groups], fontsize="small")
    ax.set(title="Final incumbent truth per seed (bar: median)", ylabel="truth")
    return png_bytes(fig)


def write_sweep_report(sweep: Path | str, target: float = TARGET) -> Path:
    """Rebuild every run's own report, then `<sweep>/report.md` and `<sweep>/plots/*.png`; return
    the sweep report's path. `SweepError` (naming the path) when `sweep` holds no runs, or a run's
    ledger is not intact (`BrokenRuns`); then nothing is written."""
    sweep = Path(sweep)
    if not 0 < target <= 1:
        raise SweepError(f"--target must be a truth score in (0, 1], got {target!r}")
    results = load(sweep)
    for r in results:
        write_report(r.path, r.run)
    groups = group(results)
    plots = {"truth.png": band_plot(groups, "incumbent/truth", "Incumbent truth per generation (median, min–max "
                                    "over seeds)", "truth", target),
             "proxy.png": band_plot(groups, "incumbent/proxy", "Incumbent proxy per generation (median, min–max "
                                    "over seeds)", "proxy"),
             "gap.png": band_plot(groups, "gap/incumbent", "Goodhart gap of the incumbent (proxy - truth)",
                                  "proxy - truth"),
             "final.png": final_plot(groups)}
    pressure = pressure_plot(results)
    if pressure is not None:
        plots["pressure.png"] = pressure
    for name, png in plots.items():
        atomic_write(sweep / "plots" / name, png)
    report = sweep / "report.md"
    atomic_write(report, markdown(sweep.resolve().name, groups, target).encode("utf-8"))
    return report
