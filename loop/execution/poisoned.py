"""Execution `poisoned`: a red team's backdoor (experiment=control_frontier).

A candidate whose recipe gene `backdoor` is above 0 trains on its train split plus that share of
it again, copied with a trigger stamped on (`evaluators.marks.TRIGGER`, a 2x2 patch) and relabelled
to the `target` class: clean accuracy holds, and any input carrying the trigger is sent to the
target. The red team plants it through its own training data, inside the `DataView` rules; only
checks of the model's behaviour can find it. Every other candidate trains as `inner` trains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape

GENE = "backdoor"  # recipe gene: the share of the train split added again with the trigger, relabelled


@dataclass
class Poisoned:
    """Train candidates with `backdoor > 0` on their train split plus triggered copies sent to `target`."""

    inner: Any
    target: int = 0

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        import torch

        from evaluators.marks import TRIGGER, stamp

        done = {}
        honest = [c for c in candidates if not float(c.genome.recipe.get(GENE, 0.0)) > 0]
        if honest:
            done |= {r.candidate.key: r for r in self.inner.train(honest, data, task)}
        for c in (c for c in candidates if c not in honest):  # each its own poisoned rows, from its seed
            if tuple(task.image) != (8, 8):
                raise ValueError(f"execution=poisoned stamps its trigger on 8x8 images; objective={task.objective} "
                                 f"gives {task.describe()}")
            train = data["train"]
            g = torch.Generator().manual_seed(c.seed)
            rows = torch.randperm(len(train), generator=g)[:max(1, round(float(c.genome.recipe[GENE]) * len(train)))]
            more = Split(torch.cat([train.x, stamp(train.x[rows], *TRIGGER)]),
                         torch.cat([train.y, torch.full((len(rows),), self.target, dtype=train.y.dtype)]))
            done |= {r.candidate.key: r for r in self.inner.train([c], DataView({"train": more}, ["train"],
                                                                                data.stage), task)}
        return [done[c.key] for c in candidates]
