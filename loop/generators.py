"""Generators: which genomes to try next. They see genomes, proxy scores and decisions, never data.

`generator=mutate` (the default for now): each child is the incumbent's genome with each
architecture and recipe gene mutated with probability `rate`, by a bounded step of relative size
`scale`; at least one gene changes, and every gene stays inside the successor space's bounds.

`generator=self_adaptive`: the same mutation, but `rate` and `scale` are genes of the successor
(its genome's `generator` part), themselves mutated log-normally and inherited with it, as in
evolution strategies: promoting a successor also promotes the machinery that proposes the next.
`generator=fixed` is the same with those genes frozen: the control that measures whether that
recursion pays off.
"""

from __future__ import annotations

import math
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
        return [mutate_genes(self.space, parent, self.rate, self.scale, rng) for _ in range(n)]


def mutate_genes(space: SuccessorSpace, parent: Genome, rate: float, scale: float,
                 rng: np.random.Generator) -> Genome:
    """A child of `parent`: each architecture and recipe gene mutates with probability `rate` (at
    least one does), by a bounded step of size `scale`. The generator's own genes are left alone."""
    genes = [(part, key, gene) for part in ("arch", "recipe") for key, gene in space.genes[part].items()]
    if not genes:
        return parent
    chosen = [g for g in genes if rng.random() < rate] or [genes[rng.integers(len(genes))]]
    changes: dict[str, dict] = {part: {} for part in PARTS}
    for part, key, gene in chosen:
        changes[part][key] = gene.perturb(getattr(parent, part)[key], scale, rng)
    return space.check(parent.replace(**changes))


SELF_ADAPTIVE_GENES = ("rate", "scale")


@dataclass
class SelfAdaptive:
    """Mutation whose rate and step size are genes of the successor, log-normally self-adapted.
    Selected with `generator=self_adaptive`; `generator=fixed` (adapt: false) is the control."""

    space: SuccessorSpace
    adapt: bool = True  # false: the generator genes stay as generation 0 set them
    tau: float = 0.3  # self-adaptation rate: a gene g becomes g * exp(tau * N(0, 1)), clipped to bounds

    def __post_init__(self) -> None:
        missing = [g for g in SELF_ADAPTIVE_GENES if g not in self.space.genes["generator"]]
        if missing:
            raise ValueError(f"generator=self_adaptive needs the generator genes {list(SELF_ADAPTIVE_GENES)} in "
                             f"successor.space.generator and successor.init.generator; missing {missing} "
                             f"(see configs/successor/mlp.yaml)")
        if not self.tau > 0:
            raise ValueError(f"generator.tau must be > 0, got {self.tau!r}")

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        children = []
        for _ in range(n):
            own = dict(parent.generator)
            if self.adapt:  # first the step sizes, then the genes they move (the ES order)
                for key in SELF_ADAPTIVE_GENES:
                    gene = self.space.genes["generator"][key]
                    own[key] = gene.clip(own[key] * math.exp(self.tau * rng.standard_normal()))
            child = parent.replace(generator=own)
            children.append(mutate_genes(self.space, child, float(own["rate"]), float(own["scale"]), rng))
        return children
