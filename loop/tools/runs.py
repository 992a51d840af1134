"""A run read back from its `ledger.jsonl`: its generations, the gate's decisions, what stopped
each nominee, and the lineage of promoted successors. The run's report (`loop.tools.report`), its
plots (`loop.tools.plots`) and the sweep comparison (`loop.tools.compare`) all read runs through
this; it reads nothing but the ledger's events (no config, no checkpoints, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from loop.ledger import Event
from loop.state import settle

GATE = ("promoted", "vetoed", "paused")
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
        done = self.done
        return done[-1].finished if done else None

    @property
    def done(self) -> list[Generation]:
        """The finished generations, in order."""
        return [g for g in self.generations.values() if g.finished]

    @property
    def baseline_id(self) -> str | None:
        """The generation-0 successor, once generation 0 has finished."""
        first = self.generations.get(0)
        return first.finished.successor if first is not None and first.finished else None

    def series(self, key: str) -> list[tuple[int, float | None]]:
        """(generation, `key` of its `generation_finished` metrics) for every finished generation."""
        return [(g.number, g.finished.metrics.get(key)) for g in self.done]

    @property
    def scores(self) -> dict[str, Mapping[str, float | None]]:
        """The `evaluated` metrics (proxy, truth, ...) of every kept successor, by id."""
        return {e.successor: e.metrics for e in self.kept("evaluated") if e.successor}


def archive(run: Run) -> dict | None:
    """The last recorded archive of elites (`promotion=map_elites`: `detail.archive` of each
    `generation_finished`), or None for a run without one."""
    last = next((g.finished for g in reversed(run.done) if "archive" in g.finished.detail), None)
    return last.detail["archive"] if last else None


@dataclass(frozen=True)
class Contamination:
    """What the private twin said of a run's successors (`contamination=twin`, loop/contamination.py)."""

    measured: list[Event]  # every evaluated successor's event, with its contamination/* metrics
    flagged: list[Event]  # those flagged (z above the threshold)
    promoted: list[str]  # flagged successors the loop promoted
    vetoed: list[str]  # flagged nominees vetoed (by the check, or by the gate)
    final: Event | None  # the final incumbent's evaluated event

    @property
    def max_z(self) -> float:
        return max(e.metrics["contamination/z"] for e in self.measured)


def contamination(run: Run) -> Contamination | None:
    """The run's contamination measurements; None when it took none."""
    measured = [e for e in run.kept("evaluated") if "contamination/z" in e.metrics]
    if not measured:
        return None
    flagged = [e for e in measured if e.metrics.get("contamination/flag")]
    ids = {e.successor for e in flagged}
    promoted = [e.successor for e in run.kept("promoted") if e.generation >= 1 and e.successor in ids]
    vetoed = [e.successor for e in run.kept("vetoed") if e.successor in ids]
    last = run.last_finished
    final = next((e for e in reversed(measured) if last is not None and e.successor == last.successor), None)
    return Contamination(measured, flagged, promoted, vetoed, final)


@dataclass(frozen=True)
class SelfConfirmation:
    """Who judged, and what it did to the truth (`error_inheritance: true`, experiment=self_confirming).
    All from the ledger: the incumbents' proxy and truth, and each evaluated successor's errors on the
    truth split against its parent's (`truth/error_inheritance`, `truth/error_base`)."""

    drift: float  # the final incumbent's truth minus generation 0's
    index: float  # the self-confirmation index: the final incumbent's proxy (its judge's score) minus its truth
    inheritance: float  # mean over successors: P(wrong | its parent wrong) on the truth split
    base: float  # mean over the same successors: P(wrong)
    successors: int  # how many successors the means are over

    @property
    def excess(self) -> float:
        """Error inheritance above the base rate: errors carried down the lineage, not independent ones."""
        return self.inheritance - self.base


def self_confirmation(run: Run) -> SelfConfirmation | None:
    """The run's self-confirmation measures; None when it measured no error inheritance."""
    pairs = [(e.metrics["truth/error_inheritance"], e.metrics["truth/error_base"]) for e in run.kept("evaluated")
             if e.metrics.get("truth/error_inheritance") is not None and e.metrics.get("truth/error_base") is not None]
    last, base = run.last_finished, run.baseline_id
    if not pairs or last is None or base is None:
        return None
    truth = last.metrics["incumbent/truth"]
    return SelfConfirmation(truth - run.scores[base]["truth"], last.metrics["incumbent/proxy"] - truth,
                            sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs), len(pairs))


@dataclass(frozen=True)
class Hindsight:
    """One generation's decision against the one the hidden truth would have made: truth promotes
    the candidate with the highest truth if it beats the incumbent's truth, and otherwise keeps the
    incumbent. `regret`: the truth of truth's choice minus the truth of the loop's (0 when they agree)."""

    generation: int
    chose: str  # the incumbent after the generation (the promoted nominee, or the one kept)
    truth_chose: str
    regret: float

    promoted: bool = False  # whether the loop promoted (else it kept the incumbent)
    truth_promotes: bool = False

    @property
    def agrees(self) -> bool:
        """The same successor, or the same kind of decision at no cost in truth (a tie on the truth split)."""
        return self.chose == self.truth_chose or (self.promoted == self.truth_promotes and self.regret == 0)


def hindsight(run: Run) -> list[Hindsight]:
    """Every finished generation after 0 with a scored candidate, decided again by the hidden truth
    (from the ledger alone: `evaluated` truth values and each generation's incumbent)."""
    out = []
    before = None
    for g in run.done:
        after = g.finished.successor
        candidates = [(e.metrics["truth"], e.successor) for e in g.of("evaluated")
                      if e.successor and e.metrics.get("truth") is not None]
        truth = {sid: t for t, sid in candidates}
        if before is not None and candidates:
            incumbent = run.scores.get(before, {}).get("truth")
            best, best_id = max(candidates, key=lambda c: c[0])  # first of equals
            choice = best_id if incumbent is None or best > incumbent else before
            value = lambda sid: truth.get(sid, incumbent if sid == before else None)  # noqa: E731
            mine, theirs = value(after), value(choice)
            regret = max(0.0, theirs - mine) if mine is not None and theirs is not None else 0.0
            out.append(Hindsight(g.number, after, choice, regret, after != before, choice != before))
        before = after
    return out


@dataclass(frozen=True)
class Speedrun:
    """What a speedrun (`objective.target` set) achieved, from the ledger alone."""

    target: float
    compute: Mapping[str, float]  # training compute of every trained successor, by id
    incumbents: list[tuple[int, str]]  # (generation, incumbent after it), generation 0 first
    first_at_target: str | None  # the first incumbent whose proxy reached the target
    faster_stopped: list[Event]  # vetoed or paused (never approved) nominees that trained with less compute than
    # their incumbent
    corners: list[tuple[int, str, float]]  # promoted successors at the proxy target whose truth missed it

    def speedup(self, since: str | None) -> float | None:
        final = self.incumbents[-1][1] if self.incumbents else None
        if since is None or final is None or not self.compute.get(final):
            return None
        return self.compute[since] / self.compute[final]


def speedrun(run: Run) -> Speedrun | None:
    target = (run.started.detail.get("speedrun") or {}).get("target") if run.started else None
    if target is None:
        return None
    compute = {e.successor: float(e.metrics.get("compute", 0)) for e in run.kept("trained") if e.successor}
    incumbents = [(g.number, g.finished.successor) for g in run.done]
    scores = run.scores
    first = next((sid for _, sid in incumbents if (scores.get(sid, {}).get("proxy") or 0) >= target), None)
    promoted = {e.successor for e in run.kept("promoted")}  # a pause a person approved ends promoted
    faster = [e for e in run.kept("vetoed", "paused") if e.generation >= 1 and e.successor in compute
              and e.successor not in promoted and e.parent in compute and compute[e.successor] < compute[e.parent]]
    corners = []
    for e in run.kept("promoted"):
        got = scores.get(e.successor, {})
        if e.generation >= 1 and (got.get("proxy") or 0) >= target and got.get("truth") is not None \
                and got["truth"] < target:
            corners.append((e.generation, e.successor, got["truth"]))
    return Speedrun(float(target), compute, incumbents, first, faster, corners)


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
        # Paused and nothing after it but the held-out audit of its nominee, its own
        # generation_finished (and maybe an approval): the run stopped on purpose and waits for a
        # person, it did not crash.
        after = [e for e in run.kept() + run.human if e.seq > pauses[-1].seq]
        if all(e.event in ("audited", "generation_finished", "approved") for e in after):
            if any(e.event == "approved" for e in after):
                return "approved, waiting to be resumed"
            return "paused awaiting approval"
    return "interrupted (or still running)"


TRIPWIRES = ("capability jump", "proxy-vs-audit gap", "vetoes in a row")  # as loop.gate.gates words them


def blockers(e: Event) -> list[str]:
    """What stopped a vetoed or paused nominee, read from the gate's reasons: each probe with a
    regressing test (`<probe>/<metric>: ...: regresses`), each tripped wire, an integrity change, a
    person. A gate whose reasons say none of these falls back to the probes beyond tolerance
    (`probe/<probe>` above 1)."""
    found: list[str] = []
    for r in e.reasons:
        if r.endswith(": regresses"):
            name = r.split(":", 1)[0].split("/", 1)[0]
        elif r.startswith("tripwire: "):
            name = "tripwire " + next((w for w in TRIPWIRES if w in r), r[len("tripwire: "):][:40])
        elif r.startswith(("integrity: ", "human: ")):
            name = r.split(":", 1)[0]
        elif r.startswith("vetoed on ") and "secret regression test" in r:  # gate=growing keeps its name back
            name = "secret mined test"
        else:
            continue
        if name not in found:
            found.append(name)
    return found or [k[len("probe/"):] for k, v in sorted(e.metrics.items())
                     if k.startswith("probe/") and k.count("/") == 1 and v is not None and v > 1]


@dataclass(frozen=True)
class Load:
    """What reviewing cost in one finished generation (issue 13's review load)."""

    generation: int
    reviews: int  # gate decisions (fallback reviews included)
    tests: int  # paired tests run: the probes' and, under gate=growing, the whole bank's (secret ones too)
    bank: int  # mined tests in the bank at the last review (0 without gate=growing)
    asked: int  # decisions a person was asked for (gate=human, tripwire pauses)
    gate_seconds: float
    audit_seconds: float
    seconds: float  # the generation's wall time

    @property
    def share(self) -> float:
        return self.gate_seconds / self.seconds if self.seconds else 0.0


def review_load(run: Run) -> list[Load]:
    """Per finished generation after 0: reviews, tests run, approvals asked and the gate's seconds."""
    out = []
    for g in run.done:
        if g.number < 1:
            continue
        decisions = g.of(*GATE)
        banks = {e.successor: int(e.metrics.get("bank/tests") or 0) for e in g.of("tests_run")}
        tests = sum(sum(k.endswith(("/p_incumbent", "/p_baseline")) and not k.startswith("probe/mined")
                        for k in e.metrics) + 2 * banks.get(e.successor, 0) for e in decisions)
        asked = sum(any(r.startswith("human: ") for r in e.reasons) or e.event == "paused" for e in decisions)
        seconds = g.finished.detail.get("seconds") or {}
        out.append(Load(g.number, len(decisions), tests, max(banks.values(), default=0), asked,
                        float(seconds.get("gate", 0.0)), float(seconds.get("audit", 0.0)),
                        float(seconds.get("total", 0.0))))
    return out


def veto_counts(run: Run) -> dict[str, int]:
    """How often each probe (or tripwire, integrity check, person) vetoed or paused a nominee."""
    counts: dict[str, int] = {}
    for e in run.kept("vetoed", "paused"):
        if e.generation >= 1:
            for name in blockers(e):
                counts[name] = counts.get(name, 0) + 1
    return counts


@dataclass(frozen=True)
class Node:
    """A successor that reached the gate: promoted (or the generation-0 baseline), vetoed or paused."""

    successor: str
    parent: str | None
    generation: int
    decision: str
    truth: float | None
    proxy: float | None
    stopped_by: tuple[str, ...] = ()

    @property
    def lives(self) -> bool:
        return self.decision in ("baseline", "promoted")


def lineage(run: Run) -> list[Node]:
    """Every successor the gate decided on, in ledger order, with the incumbent it was built from."""
    scores = run.scores
    decided = {(e.generation, e.successor) for e in run.kept("promoted", "vetoed")}  # a pause a person decided
    return [Node(e.successor, e.parent if e.generation else None, e.generation,
                 "baseline" if e.generation == 0 else e.event, scores.get(e.successor, {}).get("truth"),
                 scores.get(e.successor, {}).get("proxy"), tuple(blockers(e)) if e.event != "promoted" else ())
            for e in run.kept(*GATE)
            if e.successor and not (e.event == "paused" and (e.generation, e.successor) in decided)]


W2S = ("w2s/weak", "w2s/student", "w2s/ceiling", "w2s/pgr", "w2s/agreement", "w2s/error_imitation")


def w2s_generations(run: Run) -> list[tuple[int, Mapping[str, float | None]]]:
    """Finished generations that measured weak-to-strong supervision, with their metrics."""
    return [(g.number, g.finished.metrics) for g in run.done
            if any(k in g.finished.metrics for k in W2S)]


# --- pauses and the people who lift them ---------------------------------------------------


def pause_cause(e: Event) -> str:
    """Why the loop paused, in words, read from the `paused` event's reasons: a person's approval
    that gate=human asks for, the tripwires that fired, or an integrity failure."""
    causes = []
    for r in e.reasons:
        if r.startswith("integrity: "):
            causes.append(r[len("integrity: "):])
        elif r.startswith("tripwire: "):
            causes.append(r[len("tripwire: "):])
        elif r.startswith("human: ") and "awaits" in r:
            causes.append("gate=human asks a person to approve every promotion")
    return "; ".join(causes) or "; ".join(e.reasons) or "(no reason recorded)"


def holds_nominee(e: Event) -> bool:
    """Whether approving this pause promotes its nominee (the checks passed; see `Decision.if_approved`)."""
    return "if_approved" in e.detail


def how_to_continue(run_dir: object, e: Event) -> str:
    """The commands that decide a pause, as a person would type them."""
    approve = f"rsi-loop-approve {run_dir} --by NAME --reason TEXT"
    resume = f"rsi-loop resume={run_dir}"
    if holds_nominee(e):
        return (f"to promote {e.successor}: `{approve}`; to veto it and go on from incumbent {e.parent}: "
                f"`{approve} --reject`; then `{resume}`")
    return f"this pause promotes nothing; to go on from incumbent {e.parent}: `{approve}`, then `{resume}`"


def human_decisions(run: Run) -> list[tuple[Event, str, str, str, str]]:
    """Every decision a person made, in ledger order, as (event, who, what, about, why): answers to
    pauses (`rsi-loop-approve`) and answers gate=human got at the terminal or from an approval file."""
    out = []
    carried = {e.detail.get("nominee") for e in run.human if e.event == "approved"}  # answered by rsi-loop-approve
    for e in sorted([*run.human, *run.kept("promoted", "vetoed")], key=lambda e: e.seq):
        if e.event == "approved":
            what = {"promote": "approved", "veto": "rejected"}.get(e.detail.get("decision"), "lifted the pause")
            about = e.detail.get("nominee") or f"generation {e.generation}"
            out.append((e, str(e.detail.get("by", "?")), what, str(about), str(e.detail.get("reason", ""))))
        elif e.event in ("promoted", "vetoed") and e.successor not in carried:
            for r in e.reasons:
                if r.startswith("human: ") and " by " in r:  # "human: approved by Ada: why"
                    verdict, rest = r[len("human: "):].split(" by ", 1)
                    who, _, why = rest.partition(": ")
                    out.append((e, who, verdict, str(e.successor), why))
    return out
