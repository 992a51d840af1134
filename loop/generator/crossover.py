"""`generator=crossover`: each child is a uniform, gene-by-gene recombination of the incumbent with
one of the best-scoring genomes of past generations, then self-adaptively mutated; with no second
parent in the history yet, it is exactly `self_adaptive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from loop.generator.mutation import SELF_ADAPTIVE_GENES, check_self_adaptive, mutate_own, self_adapt
from loop.stages import Genome, Past
from successors.space import PARTS, SuccessorSpace


def check_pool(pool: int) -> None:
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ValueError(f"generator.pool must be a whole number >= 1, got {pool!r}")


def scored(past: Past) -> list[tuple[int, Genome, float]]:
    """A past generation's proposals that have a proxy (quarantined ones have none)."""
    return [(i, genome, proxy) for i, (genome, proxy) in enumerate(zip(past.proposed, past.proxy))
            if proxy is not None and math.isfinite(proxy)]


def mating_pool(parent: Genome, history: Sequence[Past], size: int) -> list[Genome]:
    """The `size` best-scoring distinct genomes proposed in past generations, other than `parent`:
    best proxy first, ties to the earlier proposal. Quarantined proposals (no proxy) never mate."""
    ranked = sorted((-proxy, past.generation, i, genome) for past in history for i, genome, proxy in scored(past))
    pool, seen = [], {parent.canonical()}
    for *_, genome in ranked:
        if len(pool) == size:
            break
        if genome.canonical() not in seen:
            seen.add(genome.canonical())
            pool.append(genome)
    return pool


def recombine(first: Genome, second: Genome, rng: np.random.Generator,
              parts: Sequence[str] = PARTS) -> Genome:
    """Uniform crossover: each gene of `parts` comes from `first` or `second` with equal chance (one
    draw per gene, in sorted gene order); the other parts are `first`'s."""
    changes: dict[str, dict] = {}
    for part in parts:
        mine, theirs = getattr(first, part), getattr(second, part)
        if set(mine) != set(theirs):
            raise ValueError(f"cannot recombine genomes whose {part} genes differ: "
                             f"{sorted(mine)} vs {sorted(theirs)}")
        changes[part] = {key: theirs[key] if rng.random() < 0.5 else mine[key] for key in mine}
    return first.replace(**changes)


@dataclass
class Crossover:
    """Recombine the incumbent with one of the best genomes of past generations, then mutate like
    `self_adaptive`. Selected with `generator=crossover`."""

    space: SuccessorSpace
    pool: int = 4  # mates: the best `pool` distinct scored genomes of past generations
    tau: float = 0.3  # self-adaptation rate of the rate and step-size genes, as in self_adaptive

    def __post_init__(self) -> None:
        check_self_adaptive(self.space, self.tau, "crossover")
        check_pool(self.pool)

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        mates = mating_pool(parent, history, self.pool)
        children = []
        for _ in range(n):  # no mate yet (generation 1): exactly self_adaptive
            child = recombine(parent, mates[rng.integers(len(mates))], rng) if mates else parent
            child = self_adapt(self.space, child, SELF_ADAPTIVE_GENES, self.tau, rng)
            children.append(mutate_own(self.space, child, rng))
        return children
