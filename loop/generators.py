"""Generators: which genomes to try next. They see genomes, proxy scores and decisions, never data.

`generator=mutate` (the default for now): each child is the incumbent's genome with each
architecture and recipe gene mutated with probability `rate`, by a bounded step of relative size
`scale`; at least one gene changes, and every gene stays inside the successor space's bounds.

`generator=self_adaptive`: the same mutation, but `rate` and `scale` are genes of the successor
(its genome's `generator` part), themselves mutated log-normally and inherited with it, as in
evolution strategies: promoting a successor also promotes the machinery that proposes the next.
`generator=fixed` is the same with those genes frozen: the control that measures whether that
recursion pays off.

`generator=crossover`: each child is a uniform, gene-by-gene recombination of the incumbent with one
of the best-scoring genomes of past generations, then self-adaptively mutated; with no second
parent in the history yet, it is exactly `self_adaptive`.

`generator=bandit`: an operator bandit. A small set of operators (mutate everything, only the
architecture, only the recipe, only the learning rate, crossover) is chosen per child by UCB1 on
what each operator paid off in past generations. Optional `prefer_<operator>` generator genes in the
successor space weigh the operators and are inherited and self-adapted with the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Mapping, Sequence

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

    def __post_init__(self) -> None:
        check_self_adaptive(self.space, self.tau, "self_adaptive")

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        keys = SELF_ADAPTIVE_GENES if self.adapt else ()
        # first the step sizes, then the genes they move (the ES order)
        return [mutate_own(self.space, self_adapt(self.space, parent, keys, self.tau, rng), rng)
                for _ in range(n)]


# --- crossover ------------------------------------------------------------------------------


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


# --- operator bandit ------------------------------------------------------------------------

OPERATORS = ("all", "arch", "recipe", "lr", "crossover")  # in this order, ties go to the first


@dataclass
class Tally:
    """What the operators paid off so far: pulls and summed rewards per operator."""

    pulls: dict[str, int]
    reward: dict[str, float]

    def mean(self, op: str) -> float:
        """Average reward; 0.5 (a middle rank) before the first reward."""
        return self.reward[op] / self.pulls[op] if self.pulls[op] else 0.5


def sibling_ranks(proxies: Sequence[float | None]) -> list[float]:
    """Each child's reward in [0, 1]: the fraction of its siblings it beats on proxy (ties count a
    half). Siblings share one parent, so this ranks them by their improvement over that parent; a
    quarantined child (no proxy) gets 0."""
    values = [-math.inf if p is None or not math.isfinite(p) else p for p in proxies]
    m = len(values)
    return [0.0 if proxies[i] is None or m < 2 else
            sum(1.0 if w < v else 0.5 if w == v else 0.0 for j, w in enumerate(values) if j != i) / (m - 1)
            for i, v in enumerate(values)]


@dataclass
class Bandit:
    """An operator bandit: per child, UCB1 picks the mutation operator that paid off best in past
    generations. Selected with `generator=bandit`.

    Reward: the child's rank among its siblings on proxy (`sibling_ranks`); all siblings share the
    incumbent as parent, so this is the rank of their improvement over it, measured within one
    generation. Which operator made each past proposal is recovered from the history alone: the
    choice is a deterministic rule (UCB1, with pending picks counted so one generation spreads over
    operators) of the earlier generations' outcomes and of each child's own preference genes, so
    replaying it over the history gives the operators back, and a resumed run re-derives the same
    statistics from its ledger. The rng drives the self-adaptation, the mates and the mutations.

    Operator preferences as genes: where the successor space declares generator genes
    `prefer_<operator>` (positive; e.g. `{type: float, low: 0.25, high: 4.0, log: true}`), each
    child's (self-adapted, inherited) preference multiplies that operator's UCB index; where they are
    absent every operator weighs 1.
    """

    space: SuccessorSpace
    operators: Sequence[str] = OPERATORS  # which of OPERATORS may be chosen
    exploration: float = 0.5  # UCB1's c: index = preference * (mean reward + c * sqrt(ln N / n))
    pool: int = 4  # the crossover operator's mates, as in generator=crossover
    tau: float = 0.3  # self-adaptation rate of rate, scale and any prefer_* genes
    adapted: tuple[str, ...] = field(init=False, default=())  # the generator genes it self-adapts

    def __post_init__(self) -> None:
        check_self_adaptive(self.space, self.tau, "bandit")
        ops = [str(op) for op in self.operators] if not isinstance(self.operators, str) else [self.operators]
        unknown = [op for op in ops if op not in OPERATORS]
        if not ops or unknown or len(set(ops)) != len(ops):
            raise ValueError(f"generator.operators must be a non-empty list of distinct operators from "
                             f"{list(OPERATORS)}; got {ops!r}")
        genes = {part: set(self.space.genes[part]) for part in ("arch", "recipe")}
        needs = {"arch": bool(genes["arch"]), "recipe": bool(genes["recipe"]), "lr": "lr" in genes["recipe"]}
        for op in ops:
            if not needs.get(op, True):
                raise ValueError(f"generator.operators: {op!r} has no gene to mutate in this successor space "
                                 f"({'recipe.lr' if op == 'lr' else op + ' genes'}); leave it out")
        self.operators = tuple(ops)
        if isinstance(self.exploration, bool) or not isinstance(self.exploration, (int, float)) \
                or not self.exploration >= 0:
            raise ValueError(f"generator.exploration must be a number >= 0, got {self.exploration!r}")
        check_pool(self.pool)
        own = self.space.genes["generator"]
        for op in OPERATORS:
            gene = own.get(f"prefer_{op}")
            if gene is not None and (gene.type == "choice" or gene.low <= 0):
                raise ValueError(f"successor.space.generator.prefer_{op} must be a positive number gene "
                                 f"(int or float with low > 0), got {gene}")
        self.adapted = SELF_ADAPTIVE_GENES + tuple(f"prefer_{op}" for op in OPERATORS if f"prefer_{op}" in own)

    def preferences(self, genome: Genome) -> dict[str, float]:
        return {op: float(genome.generator.get(f"prefer_{op}", 1.0)) for op in self.operators}

    def assign(self, tally: Tally, preferences: Sequence[Mapping[str, float]], mates: bool) -> tuple[str, ...]:
        """One operator per child, in order: the highest preference-weighted UCB1 index, an operator
        never tried before first; each pick counts as a pending pull for the next child's choice."""
        available = [op for op in self.operators if op != "crossover" or mates]
        pending = dict.fromkeys(self.operators, 0)
        chosen = []
        for prefs in preferences:
            total = sum(tally.pulls.values()) + sum(pending.values())
            best, best_key = available[0], None
            for op in available:
                tries = tally.pulls[op] + pending[op]
                key = (True, prefs[op]) if tries == 0 else \
                    (False, prefs[op] * (tally.mean(op) + self.exploration * math.sqrt(math.log(total) / tries)))
                if best_key is None or key > best_key:
                    best, best_key = op, key
            pending[best] += 1
            chosen.append(best)
        return tuple(chosen)

    def replay(self, history: Sequence[Past]) -> tuple[list[tuple[str, ...]], Tally]:
        """The operator behind every past proposal, and the tally after the last generation."""
        tally = Tally(dict.fromkeys(self.operators, 0), dict.fromkeys(self.operators, 0.0))
        operators, mates = [], False
        for past in history:
            ops = self.assign(tally, [self.preferences(g) for g in past.proposed], mates)
            operators.append(ops)
            if len(ops) > 1:  # a lone child ranks against nobody: nothing to learn
                for op, reward in zip(ops, sibling_ranks(past.proxy)):
                    tally.pulls[op] += 1
                    tally.reward[op] += reward
            mates = mates or bool(scored(past))
        return operators, tally

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: np.random.Generator) -> list[Genome]:
        _, tally = self.replay(history)
        mates = mating_pool(parent, history, self.pool)
        has_mates = any(scored(past) for past in history)  # as replay sees it: the parent may be the only one
        # ES order: first each child's own genes (preferences included), then the operator they pick
        adapted = [self_adapt(self.space, parent, self.adapted, self.tau, rng) for _ in range(n)]
        ops = self.assign(tally, [self.preferences(c) for c in adapted], has_mates)
        return [self.apply(op, child, mates, rng) for op, child in zip(ops, adapted)]

    def apply(self, op: str, child: Genome, mates: Sequence[Genome], rng: np.random.Generator) -> Genome:
        """One operator on one child. Crossover leaves the generator genes alone (they carry the
        preferences its choice was made with); with no mate other than the parent it mutates all."""
        if op == "crossover":
            if mates:
                child = recombine(child, mates[rng.integers(len(mates))], rng, parts=("arch", "recipe"))
            return mutate_own(self.space, child, rng)
        only = {"all": None, "arch": {("arch", k) for k in self.space.genes["arch"]},
                "recipe": {("recipe", k) for k in self.space.genes["recipe"]}, "lr": {("recipe", "lr")}}[op]
        return mutate_own(self.space, child, rng, only)
