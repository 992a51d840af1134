"""What a run knows, derived from its ledger alone.

The engine never keeps loop state that the ledger does not hold: after every generation, and when a
killed run resumes, it folds the ledger's events into a `RunState`. One code path for both is what
makes a resumed run end where an uninterrupted one would.

Events of a generation count only once that generation's `generation_finished` is written; a
`resumed` event drops the events of an attempt that was cut off, and that generation reruns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from loop.ledger import Event
from loop.stages import Genome, Past

DECISIONS = {"promoted": "promoted", "vetoed": "vetoed", "paused": "paused", "not_nominated": "none"}


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

    @property
    def next_generation(self) -> int:
        return self.completed + 1


def past_of(generation: int, events: Sequence[Event]) -> Past:
    """One finished generation as the generator may see it: genomes, proxies, decision, reasons."""
    proposed = [e for e in events if e.event == "proposed"]
    proxy = {e.detail.get("candidate"): e.metrics.get("proxy") for e in events if e.event == "evaluated"}
    decision, reasons = "none", ()
    for e in events:
        if e.event in DECISIONS:
            decision, reasons = DECISIONS[e.event], e.reasons
    return Past(generation, tuple(Genome.from_dict(e.detail["genome"]) for e in proposed),
                tuple(proxy.get(e.detail["candidate"]) for e in proposed), decision, tuple(reasons))


def fold(events: Sequence[Event]) -> RunState:
    state = RunState()
    pending: list[Event] = []
    for e in events:
        if e.event == "run_started":
            state.started = True
        elif e.event == "resumed":
            pending = []
        elif e.event == "approved":
            state.paused = False
        elif e.event == "run_finished":
            state.finished = True
        elif e.event == "generation_finished":
            pending.append(e)
            state.completed = e.generation
            state.incumbent = e.successor
            if e.generation == 0:
                state.baseline = e.successor
            else:
                state.history.append(past_of(e.generation, pending))
            state.paused = state.paused or e.detail.get("decision") == "paused"
            pending = []
        else:
            pending.append(e)
    state.pending = len(pending)
    return state
