"""Generators: which genomes to try next. They see genomes, proxy scores and decisions, never data.

`generator=mutate` (the default for now): each child is the incumbent's genome with each gene
mutated with probability `rate`, by a bounded step of relative size `scale`; at least one gene
changes, and every gene stays inside the successor space's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from loop.stages import Genome, Past
from successors.space import PARTS, SuccessorSpace


@dataclass
class Mutate:
    """Bounded mutation of the incumbent's genes. Selected with `generator=mutate`."""

    space: SuccessorSpace
    rate: float = 0.3  # chance that each gene mutates
    scale: float = 0.4  # log-normal sigma for log genes; fraction of the range for linear ones

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ValueError(f"generator.rate must be in (0, 1], got {self.rate!r}")
        if not self.scale > 0:
            raise ValueError(f"generator.scale must be > 0, got {self.scale!r}")

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        return [self._child(parent, rng) for _ in range(n)]

    def _child(self, parent: Genome, rng: np.random.Generator) -> Genome:
        genes = [(part, key, gene) for part in PARTS for key, gene in self.space.genes[part].items()]
        if not genes:
            return parent
        chosen = [g for g in genes if rng.random() < self.rate] or [genes[rng.integers(len(genes))]]
        changes: dict[str, dict] = {part: {} for part in PARTS}
        for part, key, gene in chosen:
            changes[part][key] = gene.perturb(getattr(parent, part)[key], self.scale, rng)
        return self.space.check(parent.replace(**changes))
