"""`execution=improvers`: an improver has no weights, so it has nothing to train.

Building one is all there is: its genome becomes a parameter-free module (`successors.improver`),
its id the hash of its genome. What it is worth, the inner loops it runs, is measured by the
evaluator (`evaluators.meta_utility`), on the evaluator's own split of task draws, and by the truth
evaluator on the held-out draws. Execution sees the train split only, and reads nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from loop.checkpoints import successor_id
from loop.stages import Candidate, DataView, Quarantined, Successor, TaskShape


@dataclass
class Improvers:
    """Builds improver successors. Selected with `execution=improvers` (experiment=recursive_improver)."""

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        from successors import build

        out: list[Successor | Quarantined] = []
        for c in candidates:
            model = build(c.genome, task)
            out.append(Successor(successor_id(c.genome.to_dict(), {}), c, model,
                                 {"train_loss": 0.0, "steps": 0, "parameters": 0}))
        return out
