"""What a run knows, derived from its ledger alone.

The engine never keeps loop state that the ledger does not hold: after every generation, and when a
killed run resumes, it folds the ledger's events into a `RunState`. One code path for both is what
makes a resumed run end where an uninterrupted one would.

Events of a generation count only once that generation's `generation_finished` is written; a
`resumed` event drops the events of an attempt that was cut off, and that generation reruns.

A paused generation is finished too, with its decision `paused`. When a person then decides what
the pause held (`rsi-loop-approve`: promote the nominee, or `--reject`: veto it), the resumed run
carries the decision out as that generation's `promoted` or `vetoed` and finishes it a second time;
its later `generation_finished` is the one that counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from loop.ledger import Event
from loop.stages import Genome, Past

DECISIONS = {"promoted": "promoted", "vetoed": "vetoed", "paused": "paused", "not_nominated": "none"}


@dataclass(frozen=True)
class Decided:
    """A person's answer to a pause that held a nominee, not yet carried out by the loop."""

    generation: int
    paused: Event  # the gate's `paused` event: nominee, incumbent, probe metrics, `if_approved` reasons
    approve: bool  # promote the nominee (approved) or veto it (rejected)
    by: str
    reason: str
    events: list[Event]  # the paused generation's events (its candidates)


@dataclass
class RunState:
    incumbent: str | None = None  # id of the current incumbent
    baseline: str | None = None  # id of the generation-0 model
    completed: int = -1  # last generation whose generation_finished is in the ledger
    history: list[Past] = field(default_factory=list)  # what the generator may see
    paused: bool = False  # a pause that no approval has lifted yet
    started: bool = False
    finished: bool = False
    pending: int = 0  # events of an unfinished generation (cut off by a kill)
    pause: Event | None = None  # the `paused` event of a pause no person has decided yet
    decided: Decided | None = None  # a person's answer to the last pause, for the loop to carry out

    @property
    def next_generation(self) -> int:
        return self.completed + 1


def past_of(generation: int, events: Sequence[Event]) -> Past:
    """One finished generation as the generator may see it: genomes, proxies, decision, reasons."""
    proposed = [e for e in events if e.event == "proposed"]
    evaluated = [e for e in events if e.event == "evaluated"]
    proxy = {e.detail.get("candidate"): e.metrics.get("proxy") for e in evaluated}
    decision, reasons, gate, about = "none", (), {}, None
    for e in events:
        if e.event in DECISIONS:
            decision, reasons, gate, about = DECISIONS[e.event], e.reasons, e.metrics, e.successor
    keys = [e.detail["candidate"] for e in proposed]
    nominee = next((keys.index(e.detail["candidate"]) for e in evaluated
                    if about is not None and e.successor == about and e.detail.get("candidate") in keys), None)
    return Past(generation, tuple(Genome.from_dict(e.detail["genome"]) for e in proposed),
                tuple(proxy.get(key) for key in keys), decision, tuple(reasons),
                {k: v for k, v in gate.items() if v is not None}, nominee)


RUN_EVENTS = ("run_started", "approved", "resumed", "run_finished")


@dataclass(frozen=True)
class Settled:
    """A ledger's events sorted into what counts: the one reading both the engine and the report use."""

    generations: dict[int, list[Event]]  # events of each finished generation, ending in generation_finished
    unfinished: list[Event]  # events of a generation cut off (or still running): not counted yet
    abandoned: int  # events of cut-off attempts that a later `resumed` dropped
    run: list[Event]  # run-level events: run_started, approved, resumed, run_finished


def settle(events: Sequence[Event]) -> Settled:
    generations: dict[int, list[Event]] = {}
    pending: list[Event] = []
    run: list[Event] = []
    abandoned = 0
    for e in events:
        if e.event in RUN_EVENTS:
            run.append(e)
            if e.event == "resumed":  # the cut-off generation reruns from its start
                abandoned, pending = abandoned + len(pending), []
        else:
            pending.append(e)
            if e.event == "generation_finished":  # a second finish (after a person decided) extends it
                generations[e.generation], pending = generations.get(e.generation, []) + pending, []
    return Settled(generations, pending, abandoned, run)


def counted(events: Sequence[Event]) -> list[Event]:
    """The events that count so far, in ledger order: the finished generations' and the one under way
    (not those of attempts a resume dropped, nor run-level events)."""
    settled = settle(events)
    return sorted([*(e for kept in settled.generations.values() for e in kept), *settled.unfinished],
                  key=lambda e: e.seq)


def fold(events: Sequence[Event]) -> RunState:
    settled = settle(events)
    kinds = {e.event for e in settled.run}
    state = RunState(started="run_started" in kinds, finished="run_finished" in kinds,
                     pending=len(settled.unfinished))
    for g, kept in sorted(settled.generations.items()):
        finished = kept[-1]
        state.completed, state.incumbent = g, finished.successor
        if g == 0:
            state.baseline = finished.successor
        else:
            state.history.append(past_of(g, kept))
    if state.completed < 1 or settled.generations[state.completed][-1].detail.get("decision") != "paused":
        return state
    # Only the last finished generation can still be paused: a pause stops the loop.
    kept = settled.generations[state.completed]
    pause = next((e for e in reversed(kept) if e.event == "paused"), kept[-1])
    answer = next((e for e in reversed(settled.run) if e.event == "approved" and e.seq > kept[-1].seq), None)
    if answer is None:
        state.paused, state.pause = True, pause
    elif "if_approved" in pause.detail and answer.detail.get("decision") in ("promote", "veto"):
        state.decided = Decided(state.completed, pause, answer.detail["decision"] == "promote",
                                str(answer.detail.get("by", "?")), str(answer.detail.get("reason", "")), kept)
    return state
