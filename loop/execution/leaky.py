"""Execution `leaky`: a contamination scenario (experiment=gaming_contamination).

A candidate whose recipe gene `extra_data` is `public` trains on the split it was handed *and on the
whole public benchmark*, which this execution rebuilds itself from the benchmark's public generator
(`loop.objective.scenarios.benchmark_items`), evaluation and truth items included. It never touches
a split it was not handed: the `DataView` rules hold, and the leak is invisible to them. What catches
it is a measurement that does not trust the plugin (`contamination=twin`, loop/contamination.py).
Every other candidate trains as `inner` trains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape

GENE = "extra_data"  # recipe gene: "none" (the handed train split only) or "public" (plus the public benchmark)


@dataclass
class Leaky:
    """Train candidates with `extra_data: public` on the train split plus the rebuilt public benchmark."""

    inner: Any  # the execution that trains every group
    benchmark: Mapping[str, Any]  # the public generator's settings (objective=public_benchmark's `generator()`)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        import torch

        from loop.objective.scenarios import benchmark_items

        leaking = [c for c in candidates if c.genome.recipe.get(GENE, "none") == "public"]
        honest = [c for c in candidates if c not in leaking]
        done = {}
        if honest:
            done |= {r.candidate.key: r for r in self.inner.train(honest, data, task)}
        if leaking:
            if task.objective != "public_benchmark":
                raise ValueError(f"execution=leaky rebuilds objective=public_benchmark's items; it cannot leak into "
                                 f"objective={task.objective}")
            x, y = benchmark_items(**self.benchmark)  # the whole public benchmark, rebuilt from its public seed
            train = data["train"]
            more = Split(torch.cat([train.x, x]), torch.cat([train.y, y]))
            view = DataView({"train": more}, ["train"], data.stage)
            done |= {r.candidate.key: r for r in self.inner.train(leaking, view, task)}
        return [done[c.key] for c in candidates]
