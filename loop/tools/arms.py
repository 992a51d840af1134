"""Sweep report sections that compare arms: within each setting of the other overrides, the runs of
one override's values side by side (gate on and off, promotion rules), paired by seed with a
bootstrap interval (`loop.meta.utility.paired`); and the sections of runs of one kind (weak-to-strong,
speedruns). `loop.tools.compare.markdown` puts them in the sweep's report.md."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from loop.tools.compare import Measure, Result, blocked_by, label, varying, verdict
from loop.tools.fmt import counts, spread
from loop.tools.runs import speedrun, w2s_generations


def of_kind(groups: Mapping[str, Sequence[Result]], read: Callable[[Any], Any]) -> dict[str, list[tuple[Result, Any]]]:
    """{group: [(run, what `read` found in it)]} for the runs where it found something (a speedrun, a
    contamination check), leaving out groups with none."""
    found = {name: [(r, read(r.run)) for r in runs] for name, runs in groups.items()}
    return {name: kept for name, pairs in found.items() if (kept := [(r, x) for r, x in pairs if x is not None])}


def speedrun_sweep_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    """Speedrun runs (`objective.target` set): the final incumbent's speed-up, per group over seeds."""
    measured = of_kind(groups, speedrun)
    if not measured:
        return []
    out = ["## Speedrun", "",
           "Speed-up: training compute (counted) of an earlier incumbent over the final incumbent's, per run; "
           "per group the median (min–max) over seeds.", "",
           "| group | runs | speed-up over generation 0 | speed-up over the first incumbent at the target | "
           "faster nominees a check stopped | promoted below the target on truth |", "|---|---:|---:|---:|---:|---:|"]
    for name, pairs in measured.items():
        over0 = [sr.speedup(sr.incumbents[0][1]) if sr.incumbents else None for _, sr in pairs]
        over_first = [sr.speedup(sr.first_at_target) for _, sr in pairs]
        out.append(f"| `{name}` | {len(pairs)} | {spread(over0)} | {spread(over_first)} | "
                   f"{counts([len(sr.faster_stopped) for _, sr in pairs])} | {counts([len(sr.corners) for _, sr in pairs])} |")
    return out + [""]


def split_by(groups: Mapping[str, Sequence[Result]], key: str) -> dict[str, dict[str, list[Result]]]:
    """{setting of the other varying overrides: {`key=value`: runs}} when groups differ by `key`, else {}."""
    keys = varying([r for runs in groups.values() for r in runs])
    if key not in keys:
        return {}
    settings: dict[str, dict[str, list[Result]]] = {}
    for runs in groups.values():
        first = runs[0].overrides  # a group's runs share every varying override
        rest = label(first, [k for k in keys if k != key])
        settings.setdefault(rest, {})[label(first, [key])] = list(runs)
    return settings


def promotion_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    """Promotion rules side by side, within each setting of the other overrides, when groups differ by
    `promotion=`: final truth, what the final incumbent cost to train, and decisions in hindsight, with
    each rule's paired difference from the first by seed."""
    from loop.meta.utility import paired, seed_differences

    settings = split_by(groups, "promotion")
    if not settings:
        return []
    out = ["## Promotion rules compared", "",
           "Compute: the final incumbent's training compute (steps x batch x 3 x forward multiply-adds). "
           "Decision accuracy: the share "
           "of generations decided as the hidden truth would have (each run's report lists the others).", "",
           "| setting | promotion | seeds | final truth | final compute | decision accuracy |",
           "|---|---|---:|---:|---:|---:|"]
    sentences = []
    measures = (("final truth", lambda r: r.final("incumbent/truth")), ("final compute", lambda r: r.final_compute),
                ("decision accuracy", lambda r: r.decision_accuracy))
    for rest, by_rule in settings.items():
        for rule, runs in by_rule.items():
            out.append(f"| `{rest}` | `{rule}` | {len(runs)} | " + " | ".join(
                spread((f(r) for r in runs), show=(lambda v: f"{v:,.0f}") if name == "final compute" else None)
                for name, f in measures) + " |")
        (first, reference), *others = by_rule.items()
        for rule, runs in others:
            for name, f in measures:
                diffs = seed_differences(runs, reference, f)
                if len(diffs) >= 2:
                    d = paired(diffs)
                    show = d.show() if name != "final compute" else f"{d.mean:+,.0f} [{d.low:+,.0f}, {d.high:+,.0f}]"
                    sentences.append(f"- `{rest}`: {name} of `{rule}` minus `{first}`, paired by seed ({d.n} seeds): "
                                     f"{show}; {beyond_noise(d)}")
    return out + ["", *sentences, ""]


def judge_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    """Who judges (`evaluator=`), within each setting of the other overrides, for runs that measured error
    inheritance (experiment=self_confirming): truth drift from generation 0, the self-confirmation index
    and error inheritance above the base rate, each judge's paired difference from `evaluator=accuracy`
    (the independent, labelled one) where it ran, else from the first."""
    from loop.meta.utility import paired, seed_differences
    from loop.tools.runs import self_confirmation

    settings = split_by(groups, "evaluator")
    if not any(self_confirmation(r.run) for by in settings.values() for runs in by.values() for r in runs):
        return []
    measures = (("truth drift", lambda r: getattr(self_confirmation(r.run), "drift", None)),
                ("self-confirmation index", lambda r: getattr(self_confirmation(r.run), "index", None)),
                ("error inheritance above the base rate", lambda r: getattr(self_confirmation(r.run), "excess", None)))
    out = ["## Who judges: self-confirmation", "",
           "Truth drift: the final incumbent's truth minus generation 0's. Self-confirmation index: the final "
           "incumbent's proxy (its judge's score) minus its truth. Error inheritance: P(a successor is wrong on a "
           "truth item | its parent is wrong on it), over every successor of the run, minus the base rate P(wrong).",
           "", "| setting | evaluator | seeds | " + " | ".join(name for name, _ in measures) + " |",
           "|---|---|---:|---:|---:|---:|"]
    sentences = []
    for rest, by_judge in settings.items():
        for judge, runs in by_judge.items():
            out.append(f"| `{rest}` | `{judge}` | {len(runs)} | "
                       + " | ".join(spread((f(r) for r in runs), sign=True) for _, f in measures) + " |")
        reference = next((k for k in by_judge if k == "evaluator=accuracy"), next(iter(by_judge)))
        for judge, runs in by_judge.items():
            if judge == reference:
                continue
            for name, f in measures:
                diffs = seed_differences(runs, by_judge[reference], f)
                if len(diffs) >= 2:
                    d = paired(diffs)
                    sentences.append(f"- `{rest}`: {name} of `{judge}` minus `{reference}`, paired by seed "
                                     f"({d.n} seeds): {d.show()}; {beyond_noise(d)}")
    return out + ["", *sentences, ""]


def contamination_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    """Runs measured against a private twin (`contamination=twin`), per group over seeds: what was flagged
    and promoted, and the final incumbent's truth against its truth on the private twin."""
    from loop.tools.runs import contamination

    measured = of_kind(groups, contamination)
    if not measured:
        return []
    out = ["## Contamination", "",
           "Per group over seeds: successors flagged (more accurate on the public audit and probe items than on their "
           "private twin beyond the threshold), flagged ones promoted, final incumbents flagged, the highest z of any "
           "successor, and the final incumbent's truth minus its accuracy on the truth split's private twin.", "",
           "| group | runs | flagged / measured | flagged promoted | final incumbent flagged | highest z | "
           "final truth | final truth twin | truth minus twin |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, pairs in measured.items():
        finals = [c.final.metrics for _, c in pairs if c.final is not None]
        out.append(f"| `{name}` | {len(pairs)} | {sum(len(c.flagged) for _, c in pairs)} / "
                   f"{sum(len(c.measured) for _, c in pairs)} | {sum(len(c.promoted) for _, c in pairs)} | "
                   f"{sum(bool(m.get('contamination/flag')) for m in finals)} of {len(finals)} | "
                   f"{max(c.max_z for _, c in pairs):.2f} | {spread(m.get('truth') for m in finals)} | "
                   f"{spread(m.get('contamination/truth_twin') for m in finals)} | "
                   f"{spread((m.get('contamination/truth_gap') for m in finals), sign=True)} |")
    return out + [""]


def beyond_noise(d) -> str:
    """A paired difference in words, without calling either direction better."""
    return ("its interval holds 0: no difference beyond seed noise" if not d.excludes_zero
            else f"{'higher' if d.mean > 0 else 'lower'} beyond seed noise")


def gate_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    """Gate on vs gate off, within each setting of the other overrides, when groups differ by `gate=`."""
    settings = split_by(groups, "gate")
    if not settings:
        return []
    out = ["## Gate on vs gate off", "",
           "Truth regret: the best truth any candidate of the run reached minus the final incumbent's truth; "
           "a gate that vetoes good successors raises it, one that keeps out gamed ones lowers it.", "",
           "| setting | gate | seeds | final truth | truth regret | last Goodhart gap | vetoes / pauses | "
           "vetoed / paused by |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
    sentences = []
    regret = Measure("truth regret (lower is better)", lambda r: r.final("truth/regret"), higher_is_better=False)
    for rest, by_gate in settings.items():
        for gate, runs in by_gate.items():
            out.append(f"| `{rest}` | `{gate}` | {len(runs)} | {spread(r.final('incumbent/truth') for r in runs)} | "
                       f"{spread(r.final('truth/regret') for r in runs)} | "
                       f"{spread((r.final('gap/incumbent') for r in runs), sign=True)} | "
                       f"{counts([r.vetoes for r in runs])} / {counts([r.pauses for r in runs])} | "
                       f"{blocked_by(runs)} |")
        if len(by_gate) > 1:
            sentences.append(f"- `{rest}`: {verdict(by_gate, regret)}")
        if len(by_gate) == 2:
            sentences += paired_regret(rest, by_gate)
    return out + ["", *sentences, ""]


def paired_regret(setting: str, by_gate: Mapping[str, Sequence[Result]]) -> list[str]:
    """The second gate's truth regret and final truth minus the first's, paired by seed, with a 95%
    bootstrap interval (`loop.meta.utility.paired`): the same seeds, so the same task draws."""
    from loop.meta.utility import paired, seed_differences

    (a, first), (b, second) = by_gate.items()
    out = []
    for key, name in (("truth/regret", "truth regret"), ("incumbent/truth", "final truth")):
        diffs = seed_differences(second, first, lambda r: r.final(key))
        if len(diffs) >= 2:
            d = paired(diffs)
            out.append(f"  - {name} of `{b}` minus `{a}`, paired by seed ({d.n} seeds): {d.show()}; {beyond_noise(d)}")
    return out


def w2s_section(groups: Mapping[str, Sequence[Result]]) -> list[str]:
    measured = {name: [r for r in runs if w2s_generations(r.run)] for name, runs in groups.items()}
    measured = {name: runs for name, runs in measured.items() if runs}
    if not measured:
        return []
    out = ["## Weak-to-strong", "",
           "Per run, the median over its generations; per group, the median (min–max) of those over seeds. "
           "PGR is undefined where ceiling - weak < 0.05; such runs and generations are counted apart.", "",
           "| group | runs | PGR | runs with PGR undefined | generations with PGR undefined | agreement | "
           "error imitation |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, runs in measured.items():
        undefined_gens = sum(m.get("w2s/pgr") is None for r in runs for _, m in w2s_generations(r.run))
        total_gens = sum(len(w2s_generations(r.run)) for r in runs)
        out.append(f"| `{name}` | {len(runs)} | {spread(r.w2s('w2s/pgr') for r in runs)} | "
                   f"{sum(r.w2s('w2s/pgr') is None for r in runs)}/{len(runs)} | {undefined_gens}/{total_gens} | "
                   f"{spread(r.w2s('w2s/agreement') for r in runs)} | "
                   f"{spread(r.w2s('w2s/error_imitation') for r in runs)} |")
    return out + [""]
