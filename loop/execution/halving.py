"""Execution `halving`: successive halving of a generation's candidates, around any other execution.

At a fixed compute (the sum of the candidates' recipe steps), a generation can train every
candidate fully, or spend part of it finding out which candidates are worth training (successive
halving, Jamieson and Talwalkar 2016; the rung structure of Hyperband). Here, with one rung:

1. a share of the train split (`validation`, 20%, rows drawn from the run's data, never the
   evaluator's) is held back to rank candidates; the contest trains on the rest;
2. every candidate trains for `first` (half) of its steps;
3. the better `keep` (half) of them, by accuracy on the held-back rows (loss, then key, breaks
   ties), continue from where they stopped, with their own remaining steps plus an equal share of
   the steps the others did not take (`share_out`: never more than the budget's steps per training
   run); the others are returned as they are, after the first rung.

So the generation's optimizer steps stay what its recipes ask for (less only where a kept
candidate's share would pass the budget's cap), and every candidate is still a successor the evaluator scores (the loop decides as before). A continued candidate starts its
second rung from its first rung's weights with fresh optimizer moments and its own batch order; its
`trained` event records the steps of both rungs and whether it was kept. Candidates that learn
from the incumbent as a teacher (`recipe.distill > 0`) train in one go: the teacher's slot of a
candidate carries what it continues from. So does a candidate with no one to compete with (generation
0): candidates that train in one go use the whole train split, as without halving. Which execution trains each rung is `inner` (batched
by default); execution still sees the train split only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from loop.checkpoints import successor_id, weights_of
from loop.execution.inherit import distill_weight
from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape


def check_share(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"execution.{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def carve(split: Split, share: float, seed: int) -> tuple[Split, Split]:
    """The train split as (rows to train on, rows held back to rank candidates), a seeded draw."""
    n = len(split)
    held = min(n - 1, max(1, round(n * share)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    back, rest = order[:held], order[held:]
    return Split(split.x[rest], split.y[rest]), Split(split.x[back], split.y[back])


def ranking(successor: Successor, rows: Split) -> tuple[float, float]:
    """How a first-rung successor ranks on the held-back rows: (accuracy, -loss), higher is better."""
    model = successor.model
    model.eval()
    with torch.no_grad():
        logits = model(rows.x)
        loss = F.cross_entropy(logits, rows.y).item()
        accuracy = (logits.argmax(-1) == rows.y).float().mean().item()
    return accuracy, -loss if math.isfinite(loss) else -math.inf


def with_steps(candidate: Candidate, steps: int) -> Candidate:
    genome = candidate.genome.replace(recipe={"steps": steps})
    return Candidate(candidate.key, genome, candidate.parent, candidate.seed, candidate.parent_genome,
                     candidate.parent_weights)


def continuation(first: Successor, steps: int) -> Candidate:
    """The second rung of `first`: its genome, starting from its weights (a same-shape copy, through
    the inheritance execution already has: the first rung is its parent), on a batch order of its own."""
    candidate = first.candidate
    genome = candidate.genome.replace(recipe={"steps": steps, "inherit": "parent", "distill": 0.0})
    seed = (candidate.seed * 1_000_003 + 1) % 2**31
    return Candidate(candidate.key, genome, first.id, seed, candidate.genome, weights_of(first.model))


def as_proposed(candidate: Candidate, trained: Successor, steps: int, kept: bool | None,
                inherited: str, before: Successor | None = None) -> Successor:
    """A rung's result as the successor of the candidate the generator proposed: its genome (and so
    its id), the steps and compute of every rung it trained (`before`: its first rung), and whether
    it was kept (None: no contest)."""
    facts: dict[str, Any] = {**trained.train, "steps": steps}
    if before is not None and "compute" in facts:
        facts["compute"] += before.train.get("compute", 0)
    if kept is not None:
        facts["halving/kept"] = int(kept)
    sid = successor_id(candidate.genome.to_dict(), weights_of(trained.model))
    return Successor(sid, candidate, trained.model, facts, inherited)


def share_out(kept: Sequence[tuple[Candidate, Successor]], steps: dict[str, int], first: dict[str, int],
              cap: int) -> dict[str, int]:
    """Second-rung steps of each kept candidate: its own remaining steps, plus the steps the stopped
    candidates did not take, dealt out one at a time in ranking order, never past `cap` (the
    budget's steps per training run). What no kept candidate can take is not spent."""
    more = {c.key: steps[c.key] - first[c.key] for c, _ in kept}
    pool = sum(steps[key] - first[key] for key in steps if key in first) - sum(more.values())
    while pool > 0:
        room = [key for key in more if more[key] < cap]
        if not room:
            break
        each = max(1, pool // len(room))
        for key in room:
            give = min(each, cap - more[key], pool)
            more[key] += give
            pool -= give
            if pool == 0:
                break
    return more


@dataclass
class Halving:
    """Successive halving around another execution. Selected with `execution=halving`."""

    inner: Any  # the execution that trains each rung (an instantiated plugin)
    first: float = 0.5  # share of its steps every candidate trains in the first rung
    keep: float = 0.5  # share of the candidates that go on to the second rung
    validation: float = 0.2  # share of the train split held back to rank candidates
    seed: int = 0  # which rows are held back

    def __post_init__(self) -> None:
        if not callable(getattr(self.inner, "train", None)):
            raise ValueError(f"execution.inner must be an execution (a plugin with train()), got {self.inner!r}")
        self.first = check_share("first", self.first)
        self.keep = check_share("keep", self.keep)
        self.validation = check_share("validation", self.validation)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        rest, held = carve(data["train"], self.validation, self.seed)
        view = DataView({"train": rest}, ["train"], data.stage)
        steps = {c.key: min(int(c.genome.recipe["steps"]), task.max_steps) for c in candidates}
        contest = [c for c in candidates if distill_weight(c.genome) == 0]
        if len(contest) < 2:
            contest = []
        whole = [c for c in candidates if c not in contest]
        out: dict[str, Successor | Quarantined] = {}
        for c, r in zip(whole, self.inner.train(whole, data, task) if whole else []):
            out[c.key] = as_proposed(c, r, r.train["steps"], None, r.inherited) if isinstance(r, Successor) else r
        first = {c.key: max(1, math.ceil(steps[c.key] * self.first)) for c in contest}
        rung = self.inner.train([with_steps(c, first[c.key]) for c in contest], view, task) if contest else []
        trained = [(c, r) for c, r in zip(contest, rung) if isinstance(r, Successor)]
        for c, r in zip(contest, rung):
            if not isinstance(r, Successor):
                out[c.key] = Quarantined(c, f"in the first rung of successive halving: {r.reason}")
        order = sorted(trained, key=lambda cr: (*ranking(cr[1], held), cr[0].key), reverse=True)
        kept = order[:max(1, math.ceil(len(contest) * self.keep))] if order else []
        for c, r in order[len(kept):]:
            out[c.key] = as_proposed(c, r, r.train["steps"], False, r.inherited)
        more = share_out(kept, steps, first, task.max_steps)
        go_on = [(c, r) for c, r in kept if more[c.key] > 0]
        second = self.inner.train([continuation(r, more[c.key]) for c, r in go_on], view, task) if go_on else []
        for (c, r), r2 in zip(go_on, second):
            if isinstance(r2, Successor):
                out[c.key] = as_proposed(c, r2, r.train["steps"] + r2.train["steps"], True, r.inherited, before=r)
            else:
                out[c.key] = Quarantined(c, f"in the second rung of successive halving: {r2.reason}")
        for c, r in kept:
            out.setdefault(c.key, as_proposed(c, r, r.train["steps"], True, r.inherited))
        return [out[c.key] for c in candidates]
