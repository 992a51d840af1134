"""`report.md` and `plots/*.png` of a run, rebuilt from its `ledger.jsonl` alone.

The ledger is the record of what a run decided, so the report reads nothing else: no config, no
checkpoints, no torch. The same ledger always gives the same `report.md` (no "generated at"
stamp), so `rsi-loop-report` can be rerun at any time, also on a run that is still going.

Besides the score table it shows what the project is about: the incumbent's proxy against its
hidden truth and the Goodhart gap between them, the gate's decisions on the generation timeline
with the probe or tripwire that vetoed or paused, the lineage of promoted successors, and, where a
run measured it, weak-to-strong supervision (`w2s/*` metrics). `loop.tools.compare` reads runs the same
way to compare the runs of a Hydra multirun.
"""

from __future__ import annotations

import math
from pathlib import Path

from loop.checkpoints import atomic_write
from loop.config import STAGES
from loop.ledger import Event, read
from loop.tools.fmt import num, pgr, reasons, short, spread, tally, utc
from loop.tools.plots import PLOTS, archive_plot, front_plot
from loop.tools.sections import (archive_section, contamination_section, hindsight_section,
                                 self_confirmation_section, speedrun_section)
from loop.tools.runs import (GATE, IN_PROGRESS, Node, Run, archive, blockers, holds_nominee, how_to_continue,
                            human_decisions, lineage, parse, pause_cause, review_load, status, veto_counts,
                            w2s_generations)


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


def review_section(run: Run) -> list[str]:
    """Review load (Amdahl): per generation, the reviews, the tests they ran, the bank, the approvals
    asked and the gate's share of the generation's wall time; when review became the bottleneck."""
    loads = [x for x in review_load(run) if x.reviews]
    if not loads:
        return []
    rows = [f"| {x.generation} | {x.reviews} | {x.tests} | {x.bank} | {x.asked} | {x.gate_seconds:.2f} | "
            f"{x.audit_seconds:.2f} | {x.seconds:.2f} | {x.share:.0%} |" for x in loads]
    first, last = loads[0], loads[-1]
    bottleneck = next((x for x in loads if x.share > 0.5), None)
    verdict = (f"Review is the bottleneck from generation {bottleneck.generation}: the gate took {bottleneck.share:.0%} "
               f"of its wall time, more than everything else together, so faster training cannot speed the loop "
               f"up by more than {1 / (1 - bottleneck.share) if bottleneck.share < 1 else float('inf'):.1f}x "
               f"(Amdahl)." if bottleneck else
               f"Review never became the bottleneck: the gate's share of a generation's wall time was at most "
               f"{max(x.share for x in loads):.0%}.")
    return ["## Review load", "",
            f"What reviewing cost, per generation with a review (wall times vary run to run; the counts do not). "
            f"The gate's share went from {first.share:.0%} (generation {first.generation}) to {last.share:.0%} "
            f"(generation {last.generation}). {verdict}", "",
            "| gen | reviews | tests run | mined tests in bank | approvals asked | gate s | audit s | generation s "
            "| gate share |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, ""]


# --- what stopped a nominee, the lineage, the Goodhart and weak-to-strong measurements ---------


def goodhart_section(run: Run) -> list[str]:
    """Per generation: the incumbent's proxy and truth and the measurements of `loop.goodhart`."""
    from loop.goodhart import WINDOW

    done = run.done
    if not done:
        return []
    first, last = done[0].finished.metrics, done[-1].finished.metrics
    change = lambda key: (last.get(key) - first.get(key)  # noqa: E731
                          if last.get(key) is not None and first.get(key) is not None else None)
    out = ["## Proxy vs truth", "",
           "The loop optimises the proxy; the truth is a hidden split it never sees. Goodhart gap: the "
           "incumbent's proxy minus its truth. Selection gap: the nominee's gap minus its generation's mean "
           "gap (what picking the candidate the proxy overrates most adds). Spearman: rank correlation of "
           f"proxy and truth over the candidates of the last {WINDOW} generations. Truth regret: the best "
           "truth any candidate reached so far minus the incumbent's.", "",
           f"From generation {done[0].number} to {done[-1].number} the incumbent's proxy changed by "
           f"{num(change('incumbent/proxy'), sign=True)} and its truth by {num(change('incumbent/truth'), sign=True)}; "
           f"the last Goodhart gap is {num(last.get('gap/incumbent'), sign=True)} and the truth regret "
           f"{num(last.get('truth/regret'))}.", "",
           "| gen | inc. proxy | inc. truth | Goodhart gap | selection gap | Spearman | truth regret |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for g in done:
        m = g.finished.metrics
        out.append(f"| {g.number} | {num(m.get('incumbent/proxy'))} | {num(m.get('incumbent/truth'))} | "
                   f"{num(m.get('gap/incumbent'), sign=True)} | {num(m.get('gap/selection'), sign=True)} | "
                   f"{num(m.get('spearman/proxy_truth'), sign=True)} | {num(m.get('truth/regret'))} |")
    return out + [""]


def gate_timeline(run: Run) -> list[str]:
    """One row per generation after 0: the decision, the nominee's proxy and truth against the
    incumbent's, and what vetoed or paused it."""
    rows = []
    scores = run.scores
    for g in run.generations.values():
        if g.number < 1:
            continue
        gate = g.of(*GATE)
        e = gate[-1] if gate else None
        nominee = scores.get(e.successor, {}) if e and e.successor else {}
        incumbent = scores.get(e.parent, {}) if e and e.parent else {}
        stopped = ", ".join(blockers(e)) if e and e.event != "promoted" else ""
        earlier = [x for x in gate[:-1] if x.event == "vetoed"]  # fallback nominations vetoed first
        if earlier:
            before = "; ".join(f"{short(x.successor)} by {', '.join(blockers(x))}" for x in earlier)
            stopped = f"{stopped + '; ' if stopped else ''}first vetoed: {before}"
        held = [x for x in gate[:-1] if x.event == "paused"]  # a pause a person then decided
        if held:
            verdict = "approved" if e.event == "promoted" else "rejected"
            stopped = f"paused by {', '.join(blockers(held[-1]))}, then {verdict} by a person"
        decision = g.decision if g.finished else IN_PROGRESS
        rows.append(f"| {g.number} | {decision} | {short(e.successor) if e else '—'} | "
                    f"{num(nominee.get('proxy'))} | {num(nominee.get('truth'))} | {num(incumbent.get('truth'))} | "
                    f"{stopped or '—'} |")
    if not rows:
        return []
    return ["## Gate timeline", "",
            "| gen | decision | nominee | nominee proxy | nominee truth | incumbent truth | vetoed / paused by |",
            "|---:|---|---|---:|---:|---:|---|", *rows, ""]


def audit_failures(e: Event) -> list[str]:
    """The held-out tests an `audited` event names as regressed (its first reason lists them)."""
    if not e.metrics.get("audit/regressed"):
        return []
    listed = e.reasons[0].split(": ", 1)[1] if ": " in e.reasons[0] else ""
    return [part.split(" (p=")[0] for part in listed.split(", ") if part]


def audit_section(run: Run) -> list[str]:
    """What the gate let through: the held-out audit of every reviewed nominee (`audited` events)."""
    audited = [e for e in run.kept("audited") if e.generation >= 1]
    if not audited:
        return []
    start = run.started.detail if run.started else {}
    names = ", ".join((start.get("held_out") or {}).get("audit", [])) or "?"
    promoted = [e for e in audited if e.reasons[0].startswith("promoted")]
    vetoed = [e for e in audited if e.reasons[0].startswith("vetoed")]
    slipped = [e for e in promoted if e.metrics.get("audit/regressed")]
    lost = [e for e in promoted if (e.metrics.get("truth/gain") or 0) < 0]
    rows = [f"| {e.generation} | {short(e.successor)} | {e.reasons[0].split(' by the gate')[0]} | "
            f"{'**regresses**' if e.metrics.get('audit/regressed') else 'passes'} | "
            f"{', '.join(audit_failures(e)) or '—'} | {num(e.metrics.get('truth/gain'), sign=True)} |"
            for e in audited]
    return ["## Held-out audit: what the gate let through", "",
            f"Probe families the gate never consults ({names}) ran on each of the {len(audited)} nominees it "
            f"reviewed, with the gate's paired tests, for this report only. Of {len(promoted)} promotions, "
            f"**{len(slipped)} regress on the held-out audit** and {len(lost)} lose hidden truth; of "
            f"{len(vetoed)} vetoes, {sum(bool(e.metrics.get('audit/regressed')) for e in vetoed)} regress on "
            f"the audit too. (Paused nominees are counted in neither.)", "",
            "| gen | nominee | gate | held-out audit | regressed on | truth gain vs incumbent |",
            "|---:|---|---|---|---|---:|", *rows, ""]


def bank_section(run: Run) -> list[str]:
    """gate=growing's bank: each mined test (rule, when, from which failure, public or secret), how
    often it fired, and the nominees it vetoed; the bank's size per generation."""
    added = [e for e in run.kept("test_added")]
    if not added:
        return []
    retired = {e.detail.get("name"): e.generation for e in run.kept("test_retired")}
    runs = run.kept("tests_run")
    decisions = {(e.generation, e.successor): e.event for e in run.kept(*GATE)}
    fired: dict[str, list[str]] = {}
    for e in runs:
        for name in e.detail.get("fired", []):
            fired.setdefault(name, []).append(f"{short(e.successor)} ({decisions.get((e.generation, e.successor), '?')}, "
                                             f"gen {e.generation})")
    rows = []
    for e in added:
        test = e.detail["test"]
        name = test["name"]
        rows.append(f"| {name} | {'secret' if test.get('secret') else 'public'} | {e.generation} | "
                    f"{e.reasons[0].split(': ', 1)[-1]} | {e.reasons[1] if len(e.reasons) > 1 else '—'} | "
                    f"{', '.join(fired.get(name, [])) or '—'} | {retired.get(name, '—')} |")
    sizes = ", ".join(f"gen {e.generation}: {int(e.metrics.get('bank/tests', 0))}" for e in runs)
    return ["## Mined regression tests (gate=growing)", "",
            f"{len(added)} tests mined, {len(retired)} retired; bank size at each review: {sizes or '—'}. "
            "Secret tests veto like the others, but the generator never reads their names or results; "
            "they are named here, for people.", "",
            "| test | kind | found in gen | rule | found from | fired on (decision) | retired in gen |",
            "|---|---|---:|---|---|---|---:|", *rows, ""]


def lineage_tree(nodes: list[Node]) -> list[str]:
    """An indented text tree, parent above child: promoted successors carry on the line; a vetoed
    or paused nominee is a leaf that ends its branch."""
    living = {n.successor for n in nodes if n.lives}
    children: dict[str, list[Node]] = {}
    for n in nodes:
        if n.parent in living:
            children.setdefault(n.parent, []).append(n)
    stack = [(n, "", True, True) for n in reversed([n for n in nodes if n.parent not in living])]
    lines, seen = [], set()
    while stack:
        node, prefix, last, top = stack.pop()
        why = f" by {', '.join(node.stopped_by)}" if node.stopped_by else ""
        label = f"{node.successor[:8]}  gen {node.generation}  truth {num(node.truth)}  {node.decision}{why}"
        lines.append(label if top else f"{prefix}{'└─ ' if last else '├─ '}{label}")
        if node.lives and node.successor not in seen:
            seen.add(node.successor)
            kids = children.get(node.successor, [])
            inner = "" if top else prefix + ("   " if last else "│  ")
            stack += [(k, inner, i == len(kids) - 1, False) for i, k in reversed(list(enumerate(kids)))]
    return lines


def w2s_section(run: Run) -> list[str]:
    rows = w2s_generations(run)
    if not rows:
        return []
    pgrs = [m.get("w2s/pgr") for _, m in rows]
    undefined = sum(v is None for v in pgrs)
    out = ["## Weak-to-strong", "",
           "PGR = (student - weak) / (ceiling - weak): the share of the gap between the weak teacher and a "
           "student trained on gold labels that the student recovers from the teacher's labels. Agreement: "
           "the student agrees with the teacher; error imitation: it agrees where the teacher is wrong.", "",
           f"Over {len(rows)} generations, median (min–max): PGR {spread(pgrs)} where defined, "
           f"{undefined} generations undefined; agreement {spread(m.get('w2s/agreement') for _, m in rows)}; "
           f"error imitation {spread(m.get('w2s/error_imitation') for _, m in rows)}.", "",
           "| gen | weak | student | ceiling | PGR | agreement | error imitation |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for number, m in rows:
        out.append(f"| {number} | {num(m.get('w2s/weak'))} | {num(m.get('w2s/student'))} | "
                   f"{num(m.get('w2s/ceiling'))} | {pgr(m.get('w2s/pgr'))} | "
                   f"{num(m.get('w2s/agreement'))} | {num(m.get('w2s/error_imitation'))} |")
    return out + [""]


def pareto(run: Run) -> bool:
    """Whether the run promoted with `promotion=pareto` (its report then draws the fronts)."""
    plugins = run.started.detail.get("plugins", {}) if run.started else {}
    return str(plugins.get("promotion", "")).endswith("pareto.Pareto")


def human_section(run: Run) -> list[str]:
    """The decision a pause waits for, if any, and every decision a person made: who, when, what, why."""
    out = ["## Human decisions", ""]
    pauses = run.kept("paused")
    if status(run) == "paused awaiting approval":
        e = pauses[-1]
        held = f"it holds nominee {short(e.successor)}" if holds_nominee(e) else "it promotes nothing"
        out += [f"**Pending**: generation {e.generation} paused ({pause_cause(e)}); {held}. "
                f"{how_to_continue('<run_dir>', e).capitalize()}.", ""]
    decisions = human_decisions(run)
    if not decisions:
        return out + ["_No decision by a person._", ""]
    out += ["| when | gen | who | decision | about | why |", "|---|---:|---|---|---|---|"]
    for e, who, what, about, why in decisions:
        about = about if about.startswith("generation") else short(about)
        out.append(f"| {utc(e.time)} | {e.generation} | {who} | {what} | {about} | {why} |")
    return out + [""]


def markdown(name: str, run: Run) -> str:
    from loop.tools.improvers import run_section  # it builds on this module's helpers

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
    when = utc(run.started.time) if run.started else "—"

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
            f"| vetoed / paused by | {tally(veto_counts(run))} |",
            f"| approvals | {approvals} |",
            f"| quarantined | {len(run.kept('quarantined'))} |", ""]
    if run.finished and run.finished.reasons:
        out += [f"Finished: {reasons(run.finished)}", ""]

    out += ["## Plots", "", "![proxy and truth per generation](plots/scores.png)", "",
            "![Goodhart gap, truth regret and rank correlation per generation](plots/goodhart.png)", "",
            "![gate probes, nominee vs incumbent](plots/gate.png)", "",
            "![lineage: promoted successors and the nominees the gate stopped](plots/lineage.png)", ""]
    if pareto(run):
        out += ["![Pareto fronts per generation: proxy against training compute](plots/front.png)", ""]

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

    out += goodhart_section(run)
    out += speedrun_section(run)
    out += archive_section(run)
    out += contamination_section(run)
    out += self_confirmation_section(run)
    out += hindsight_section(run)
    out += gate_timeline(run)
    out += audit_section(run)
    out += bank_section(run)
    nodes = lineage(run)
    if nodes:
        out += ["## Lineage", "", "Each promoted successor under the incumbent it was built from; a vetoed or "
                "paused nominee ends its branch.", "", "```", *lineage_tree(nodes), "```", ""]
    out += w2s_section(run)
    out += run_section(run)
    out += time_table(run)
    out += review_section(run)
    out += ["## Gate decisions", ""]
    for e in gate_events:  # tests within tolerance fold away: what decided stays in sight
        passed = [r for r in e.reasons if r.endswith(": ok")]
        out += [f"- generation {e.generation}: **{e.event}** nominee {short(e.successor)} "
                f"vs incumbent {short(e.parent)}"] + [f"  - {r}" for r in e.reasons if r not in passed]
        if passed:
            out += [f"  <details><summary>{len(passed)} tests within tolerance</summary>", "",
                    *[f"  - {r}" for r in passed], "", "  </details>", ""]
    out += [] if gate_events else ["_No gate decisions after generation 0._"]
    out.append("")

    out += human_section(run)
    out += ["## Pauses and resumes", ""]
    human = sorted(run.kept("paused") + run.human, key=lambda e: e.seq)
    for e in human:
        if e.event == "resumed":
            text = (f"restarted generation {e.detail.get('restarted_generation', e.generation)}, "
                    f"discarded {e.detail.get('discarded_events', 0)} events")
        else:
            text = pause_cause(e) if e.event == "paused" else reasons(e)
        out.append(f"- generation {e.generation}: **{e.event}** — {text}")
    out += [] if human else ["_None._"]
    out.append("")

    out += ["## Quarantined", ""]
    quarantined = run.kept("quarantined")
    out += [f"- generation {e.generation}, candidate {e.detail.get('candidate', '?')}: {reasons(e)}"
            for e in quarantined] or ["_None._"]
    out.append("")
    return "\n".join(out)


def write_report(run_dir: Path | str, run: Run | None = None) -> Path:
    """(Re)build `<run_dir>/report.md` and `<run_dir>/plots/*.png` from `ledger.jsonl` (or from
    `run`, already parsed from it); return the report's path. A ledger that is not intact raises
    `loop.ledger.LedgerError`."""
    run_dir = Path(run_dir)
    run = parse(read(run_dir / "ledger.jsonl")) if run is None else run
    for name, plot in PLOTS.items():
        atomic_write(run_dir / "plots" / name, plot(run))
    if pareto(run):
        atomic_write(run_dir / "plots" / "front.png", front_plot(run))
    if archive(run) is not None:
        atomic_write(run_dir / "plots" / "archive.png", archive_plot(run))
    report = run_dir / "report.md"
    atomic_write(report, markdown(run_dir.resolve().name, run).encode("utf-8"))
    return report
