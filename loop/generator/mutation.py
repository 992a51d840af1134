"""Mutation generators: which genomes to try next. Generators see genomes, proxy scores and
decisions, never data.

`generator=mutate`: each child is the incumbent's genome with each architecture and recipe gene
mutated with probability `rate`, by a bounded step of relative size `scale`; at least one gene
changes, and every gene stays inside the successor space's bounds.

`generator=self_adaptive` (the default): the same mutation, but `rate` and `scale` are genes of the
successor (its genome's `generator` part), themselves mutated log-normally and inherited with it, as
in evolution strategies: promoting a successor also promotes the machinery that proposes the next.
`generator=fixed` is the same with those genes frozen: the control that measures whether that
recursion pays off. A genome may also carry operator weights (`weight_<op>` generator genes, as an
improver freezes them into its inner loops): each child is then made by one operator drawn in
proportion (mutate all, only the architecture, only the recipe, only the learning rate, crossover,
restart from generation 0).

The other generators build on these operators: `loop.generator.crossover`, `loop.generator.bandit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Sequence

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
                 rng: np.random.Generator, only: Collection[tuple[str, str]] | None = None) -> Genome:
    """A child of `parent`: each architecture and recipe gene mutates with probability `rate` (at
    least one does), by a bounded step of size `scale`. The generator's own genes are left alone.
    `only` narrows the genes that may mutate to these (part, name) pairs (the bandit's operators)."""
    genes = [(part, key, gene) for part in ("arch", "recipe") for key, gene in space.genes[part].items()
             if only is None or (part, key) in only]
    if not genes:
        return parent
    chosen = [g for g in genes if rng.random() < rate] or [genes[rng.integers(len(genes))]]
    changes: dict[str, dict] = {part: {} for part in PARTS}
    for part, key, gene in chosen:
        changes[part][key] = gene.perturb(getattr(parent, part)[key], scale, rng)
    return space.check(parent.replace(**changes))


SELF_ADAPTIVE_GENES = ("rate", "scale")
STEPS_FROM = ("self", "generation0")


def check_self_adaptive(space: SuccessorSpace, tau: float, name: str) -> None:
    """The checks every self-adaptive generator shares: its genes are in the space, `tau` > 0."""
    missing = [g for g in SELF_ADAPTIVE_GENES if g not in space.genes["generator"]]
    if missing:
        raise ValueError(f"generator={name} needs the generator genes {list(SELF_ADAPTIVE_GENES)} in "
                         f"successor.space.generator and successor.init.generator; missing {missing} "
                         f"(see configs/successor/mlp.yaml)")
    if not tau > 0:
        raise ValueError(f"generator.tau must be > 0, got {tau!r}")


def self_adapt(space: SuccessorSpace, genome: Genome, keys: Sequence[str], tau: float,
               rng: np.random.Generator) -> Genome:
    """`genome` with each generator gene in `keys` multiplied by exp(tau * N(0, 1)), within bounds."""
    own = dict(genome.generator)
    for key in keys:
        gene = space.genes["generator"][key]
        own[key] = gene.clip(own[key] * math.exp(tau * rng.standard_normal()))
    return genome.replace(generator=own)


def mutate_own(space: SuccessorSpace, genome: Genome, rng: np.random.Generator,
               only: Collection[tuple[str, str]] | None = None) -> Genome:
    """`mutate_genes` with the rate and step size the genome itself carries."""
    return mutate_genes(space, genome, float(genome.generator["rate"]), float(genome.generator["scale"]),
                        rng, only)


@dataclass
class SelfAdaptive:
    """Mutation whose rate and step size are genes of the successor, log-normally self-adapted.
    Selected with `generator=self_adaptive`; `generator=fixed` (adapt: false) is the control."""

    space: SuccessorSpace
    adapt: bool = True  # false: the generator genes stay as generation 0 set them
    tau: float = 0.3  # self-adaptation rate: a gene g becomes g * exp(tau * N(0, 1)), clipped to bounds
    # Whose rate and step size move a child's other genes: "self", the child's own (self-adapted)
    # ones; "generation0", generation 0's, while the child's own still self-adapt as genes. One
    # level up (successor=improver, whose rate and step size are genes being improved) these are
    # the recursive arm, I(t+1) = I(t)(I(t)), and its control, I(t+1) = I(0)(I(t)).
    steps_from: str = "self"

    def __post_init__(self) -> None:
        check_self_adaptive(self.space, self.tau, "self_adaptive")
        if self.steps_from not in STEPS_FROM:
            raise ValueError(f"generator.steps_from must be one of {list(STEPS_FROM)}, got {self.steps_from!r}")

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        keys = SELF_ADAPTIVE_GENES if self.adapt else ()
        # first the step sizes, then the genes they move (the ES order)
        children = []
        for _ in range(n):
            child = self_adapt(self.space, parent, keys, self.tau, rng)
            own = self.space.initial if self.steps_from == "generation0" else child
            op = pick_operator(own, rng)
            children.append(self.operate(op, child, float(own.generator["rate"]), float(own.generator["scale"]),
                                         parent, history, rng))
        return children

    def operate(self, op: str, child: Genome, rate: float, scale: float, parent: Genome,
                history: Sequence[Past], rng: np.random.Generator) -> Genome:
        """One operator on one child (`all`, today's mutation of every gene, unless the genome
        carries operator weights): mutate only the architecture, only the recipe, only the learning
        rate; cross over with one of the best past genomes first; or restart from generation 0's
        genome (keeping the child's generator genes) and mutate that."""
        from loop.generator.crossover import mating_pool, recombine

        only = None
        if op in ("arch", "recipe"):
            only = {(op, k) for k in self.space.genes[op]}
        elif op == "lr":
            only = {("recipe", "lr")}
        elif op == "crossover":
            mates = mating_pool(parent, history, 4)
            if mates:
                child = recombine(child, mates[rng.integers(len(mates))], rng, parts=("arch", "recipe"))
        elif op == "restart":
            child = self.space.initial.replace(generator=dict(child.generator))
        return mutate_genes(self.space, child, rate, scale, rng, only)


WEIGHTED_OPERATORS = ("all", "arch", "recipe", "lr", "crossover", "restart")  # `weight_<op>` generator genes


def pick_operator(genome: Genome, rng: np.random.Generator) -> str:
    """The operator a child is made with, drawn in proportion to the `weight_<op>` generator genes
    the genome carries (an improver's operator weights, frozen into its inner loops). Without such
    genes, or with one operator carrying all the weight, no draw is made: `all` (or that operator),
    so a genome without weights mutates exactly as before."""
    weights = {op: float(genome.generator[f"weight_{op}"]) for op in WEIGHTED_OPERATORS
               if f"weight_{op}" in genome.generator}
    positive = {op: w for op, w in weights.items() if w > 0}
    if len(positive) <= 1:
        return next(iter(positive), "all")
    ops = list(positive)
    total = sum(positive.values())
    return ops[int(rng.choice(len(ops), p=[positive[op] / total for op in ops]))]
