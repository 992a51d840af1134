"""`generator=credit`: mutation whose rate and step size are chosen by what they produced, not by
how good the successor carrying them is (GESMR's group elite, arXiv 2204.04817).

Self-adaptation selects step sizes through their carrier's own fitness, and drifts toward timid
steps (GESMR's vanishing mutation rate; an improver's own score predicts poorly how much its
descendants improve, the metaproductivity mismatch of the Huxley-Goedel Machine, arXiv 2510.21614).
Here each generation's children are dealt round-robin into `groups` groups, each with its own
(rate, scale); a group is credited with the best proxy among its children (they share the incumbent
as parent, so this is the best gain its genes produced). The next generation's groups are the best
group's genes and `groups - 1` log-normal perturbations of them, whichever child is promoted.

The credit is re-derived from the history (genomes and proxies), so a resumed run proposes exactly
what the uninterrupted one would. The children carry the genes they were made with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from loop.generator.mutation import SELF_ADAPTIVE_GENES, check_self_adaptive, mutate_genes, self_adapt
from loop.stages import Genome, Past
from successors.space import SuccessorSpace

def genes_of(genome: Genome) -> tuple[float, ...]:
    return tuple(float(genome.generator[k]) for k in SELF_ADAPTIVE_GENES)


@dataclass
class GroupElite:
    """Rate and step size credited by the best child they produced. Selected with `generator=credit`."""

    space: SuccessorSpace
    groups: int = 2  # gene settings tried per generation: the elite and groups - 1 perturbations of it
    tau: float = 0.3  # log-normal step of the perturbations
    name = "credit"  # its config's name, for error messages

    def __post_init__(self) -> None:
        check_self_adaptive(self.space, self.tau, self.name)
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise ValueError(f"generator.groups must be a whole number >= 1, got {self.groups!r}")

    def elite(self, parent: Genome, history: Sequence[Past]) -> dict[str, float]:
        """The generator genes whose children did best in the latest generation with a scored child
        (the parent's own genes before any)."""
        for past in reversed(history):
            credit: dict[tuple[float, ...], float] = {}
            for genome, proxy in zip(past.proposed, past.proxy):
                if proxy is not None and math.isfinite(proxy):
                    key = genes_of(genome)
                    credit[key] = max(credit.get(key, -math.inf), proxy)
            if credit:
                winner = max(credit, key=lambda k: (credit[k], k))  # ties: the larger genes, deterministic
                return dict(zip(SELF_ADAPTIVE_GENES, winner))
        return {k: float(parent.generator[k]) for k in SELF_ADAPTIVE_GENES}

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        base = self.space.check(parent.replace(generator=self.elite(parent, history)))
        settings = [base] + [self_adapt(self.space, base, SELF_ADAPTIVE_GENES, self.tau, rng)
                             for _ in range(self.groups - 1)]
        children = []
        for i in range(n):  # dealt round-robin: group j holds children j, j + groups, ...
            own = settings[i % len(settings)]
            children.append(mutate_genes(self.space, own, float(own.generator["rate"]), float(own.generator["scale"]),
                                         rng))
        return children


@dataclass
class Lineage(GroupElite):
    """Rate and step size credited by what their carrier's descendants gained. `generator=lineage`.

    The clade score of the Huxley-Goedel Machine (arXiv 2510.21614), in a one-incumbent loop: every
    promoted successor's descendants are what the loop proposes after it, so a promoted successor is
    credited with the best proxy proposed in the `depth` generations after its promotion, minus its
    own proxy: how much its line went on to gain, not how good it was. The next generation's groups
    are the genes of the promoted successor with the best such gain (ties: the latest) and `groups -
    1` perturbations of them. Only a successor whose `depth` generations have all run is credited;
    until one has, the parent's own genes lead (as in `self_adaptive`). A caveat of the one-incumbent
    loop: once credit exists, the descendants were made with the credited genes (and their
    perturbations), not necessarily with the credited successor's own, so its clade gain mixes what
    its weights and other genes produced; with a population of parents the two would separate.
    """

    depth: int = 3  # generations of descendants a promoted successor is credited with
    name = "lineage"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"generator.depth must be a whole number >= 1, got {self.depth!r}")

    def clade_gains(self, history: Sequence[Past]) -> list[tuple[int, Genome, float]]:
        """(generation, genome, gain) of every promoted successor whose `depth` later generations have run."""
        last = max((past.generation for past in history), default=-1)
        gains = []
        for past in history:
            if past.decision != "promoted" or past.nominee is None or past.generation + self.depth > last:
                continue
            own = past.proxy[past.nominee]
            later = [p for q in history if past.generation < q.generation <= past.generation + self.depth
                     for p in q.proxy if p is not None and math.isfinite(p)]
            if own is not None and math.isfinite(own) and later:
                gains.append((past.generation, past.proposed[past.nominee], max(later) - own))
        return gains

    def elite(self, parent: Genome, history: Sequence[Past]) -> dict[str, float]:
        gains = self.clade_gains(history)
        if not gains:
            return {k: float(parent.generator[k]) for k in SELF_ADAPTIVE_GENES}
        _, genome, _ = max(gains, key=lambda t: (t[2], t[0]))
        return dict(zip(SELF_ADAPTIVE_GENES, genes_of(genome)))
