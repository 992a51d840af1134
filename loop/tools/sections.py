"""Report sections of runs of one kind: speedruns, archives of elites, contamination checks, judges,
and every run's decisions in hindsight. Each returns its Markdown lines, or none where the run has
nothing of its kind (`loop.tools.report.markdown` puts them in the run's report)."""

from __future__ import annotations

from loop.tools.fmt import num, short
from loop.tools.runs import GATE, Run, archive, contamination, hindsight, self_confirmation, speedrun


def speedrun_section(run: Run) -> list[str]:
    """A speedrun's speed-up, the faster nominees a check stopped, and promotions that cut corners."""
    sr = speedrun(run)
    if sr is None:
        return []
    gen0 = sr.incumbents[0][1] if sr.incumbents else None
    final = sr.incumbents[-1][1] if sr.incumbents else None
    fmt = lambda sid: f"{sr.compute.get(sid, 0):,.0f}" if sid else "—"  # noqa: E731
    times = lambda x: "—" if x is None else f"{x:.2f}x"  # noqa: E731
    out = ["## Speedrun", "",
           f"Target: proxy accuracy {sr.target:g}, checked by the gate on the audit split. Compute: optimizer steps x "
           f"rows per batch x 3 x the forward multiply-adds of one example (counted, not timed).", "",
           "| | incumbent | training compute | speed-up to the final incumbent |", "|---|---|---:|---:|",
           f"| generation 0 | {short(gen0)} | {fmt(gen0)} | {times(sr.speedup(gen0))} |",
           f"| first incumbent at the target | {short(sr.first_at_target)} | {fmt(sr.first_at_target)} | "
           f"{times(sr.speedup(sr.first_at_target))} |",
           f"| final incumbent | {short(final)} | {fmt(final)} | 1.00x |", ""]
    out += [f"**Faster nominees a check stopped: {len(sr.faster_stopped)}**", ""]
    out += [f"- generation {e.generation}: {short(e.successor)} ({fmt(e.successor)} against the incumbent's "
            f"{fmt(e.parent)}), {e.event}: {e.reasons[0]}" for e in sr.faster_stopped] or ["_None._"]
    out += ["", f"**Promoted at the proxy target but below it on the hidden truth (cutting corners): "
                f"{len(sr.corners)}**", ""]
    out += [f"- generation {g}: {short(sid)}, truth {num(truth)}" for g, sid, truth in sr.corners] or ["_None._"]
    return out + [""]


def archive_section(run: Run) -> list[str]:
    """`promotion=map_elites`: coverage and QD-score per generation, and the last archive's elites."""
    found = archive(run)
    if found is None:
        return []
    names = list(found["descriptors"])
    out = ["## Archive of elites (quality-diversity)", "",
           f"Each cell of {' x '.join(f'`{n}`' for n in names)} keeps its best successor by score; candidates are "
           f"bred from the incumbent or from elites. Coverage: filled cells of all cells; QD-score: the sum of the "
           f"elites' proxies.", "", "![the archive as a heatmap](plots/archive.png)", "",
           "| gen | elites | coverage | QD-score |", "|---:|---:|---:|---:|"]
    out += [f"| {g.number} | {int(g.finished.metrics.get('archive/elites', 0))} | "
            f"{g.finished.metrics.get('archive/coverage', 0):.1%} | {num(g.finished.metrics.get('archive/qd_score'))} |"
            for g in run.done if "archive/elites" in g.finished.metrics]
    out += ["", "| cell | " + " | ".join(f"`{n}`" for n in names) + " | elite | generation | proxy |",
            "|---|" + "---:|" * len(names) + "---|---:|---:|"]
    for key, elite in found["elites"].items():
        out.append(f"| {key} | " + " | ".join(f"{v:.4g}" for v in elite["values"])
                   + f" | {short(elite['successor'])} | {elite['generation']} | {num(elite['proxy'])} |")
    return out + [""]


def contamination_section(run: Run) -> list[str]:
    """Successors measured against a private twin of the held-out splits (`contamination=twin`)."""
    found = contamination(run)
    if found is None:
        return []
    final = found.final.metrics if found.final else {}
    out = ["## Contamination", "",
           "Each successor's accuracy on the gate's public audit and probe items minus its accuracy on their "
           "private twin (fresh items of the same distribution, drawn with a key kept outside the run directory): "
           "a model trained on evaluation items scores higher on the public ones. Flagged: more than the "
           "threshold's standard errors above 0.", "",
           f"**{len(found.flagged)} of {len(found.measured)} successors flagged as contaminated**; "
           f"{len(found.promoted)} of them promoted, {len(found.vetoed)} vetoed. "
           f"Final incumbent: {'**contaminated**' if final.get('contamination/flag') else 'not flagged'} "
           f"(gap {num(final.get('contamination/gap'), sign=True)}, z {num(final.get('contamination/z'))}); its "
           f"truth {num(found.final.metrics.get('truth') if found.final else None)} against "
           f"{num(final.get('contamination/truth_twin'))} on the truth split's private twin.", ""]
    if found.flagged:
        out += ["| gen | successor | gap | z | truth | truth twin | decision |", "|---:|---|---:|---:|---:|---:|---|"]
        fate = {e.successor: e.event for e in run.kept(*GATE) if e.generation >= 1}
        out += [f"| {e.generation} | {short(e.successor)} | {num(e.metrics['contamination/gap'], sign=True)} | "
                f"{num(e.metrics['contamination/z'])} | {num(e.metrics.get('truth'))} | "
                f"{num(e.metrics.get('contamination/truth_twin'))} | {fate.get(e.successor, '—')} |"
                for e in found.flagged]
    return out + [""]


def self_confirmation_section(run: Run) -> list[str]:
    """Error inheritance and the self-confirmation index per generation (`error_inheritance: true`)."""
    found = self_confirmation(run)
    if found is None:
        return []
    out = ["## Self-confirmation and error inheritance", "",
           "Self-confirmation index: the incumbent's proxy (what its judge said) minus its hidden truth. Error "
           "inheritance: P(a successor is wrong on a truth item | its parent is wrong on it), against the base rate "
           "P(it is wrong); well above the base rate, errors are carried down the lineage.", "",
           f"Over the run: truth drift from generation 0 {num(found.drift, sign=True)}; final self-confirmation index "
           f"{num(found.index, sign=True)}; error inheritance {num(found.inheritance)} against a base rate of "
           f"{num(found.base)} ({found.successors} successors).", "",
           "| gen | incumbent proxy | incumbent truth | self-confirmation index | error inheritance | base rate |",
           "|---:|---:|---:|---:|---:|---:|"]
    for g in run.done:
        m = g.finished.metrics
        rows = [e.metrics for e in g.of("evaluated") if e.metrics.get("truth/error_inheritance") is not None]
        mean = (lambda key: sum(r[key] for r in rows) / len(rows)) if rows else (lambda key: None)
        out.append(f"| {g.number} | {num(m.get('incumbent/proxy'))} | {num(m.get('incumbent/truth'))} | "
                   f"{num(m.get('incumbent/proxy', 0) - m.get('incumbent/truth', 0), sign=True)} | "
                   f"{num(mean('truth/error_inheritance'))} | {num(mean('truth/error_base'))} |")
    return out + [""]


def hindsight_section(run: Run) -> list[str]:
    """Every decision against the one the hidden truth would have made (`loop.tools.runs.hindsight`)."""
    decisions = hindsight(run)
    if not decisions:
        return []
    wrong = [d for d in decisions if not d.agrees]
    out = ["## Decisions in hindsight", "",
           "Would the hidden truth have decided the same? Truth promotes the candidate with the highest truth if it "
           "beats the incumbent's truth, and otherwise keeps the incumbent. Regret: the truth of truth's choice "
           "minus the truth of the loop's.", "",
           f"**Decision accuracy: {len(decisions) - len(wrong)} of {len(decisions)} generations "
           f"({100 * (len(decisions) - len(wrong)) / len(decisions):.0f}%)**; truth regret of the "
           f"{len(wrong)} other{'s' * (len(wrong) != 1)}: {num(sum(d.regret for d in wrong))} in all"
           + (f", {num(max(d.regret for d in wrong))} at most." if wrong else "."), ""]
    if wrong:
        out += ["| gen | the loop's incumbent after it | truth's choice | regret |", "|---:|---|---|---:|"]
        out += [f"| {d.generation} | {short(d.chose)} | {short(d.truth_chose)} | {num(d.regret)} |" for d in wrong]
        out.append("")
    return out
