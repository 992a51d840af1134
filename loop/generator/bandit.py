"""`generator=bandit`: an operator bandit. A small set of operators (mutate everything, only the
architecture, only the recipe, only the learning rate, crossover) is chosen per child by UCB1 on
what each operator paid off in past generations. Optional `prefer_<operator>` generator genes in the
successor space weigh the operators and are inherited and self-adapted with the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from loop.generator.crossover import check_pool, mating_pool, recombine, scored
from loop.generator.mutation import SELF_ADAPTIVE_GENES, check_self_adaptive, mutate_own, self_adapt
from loop.stages import Genome, Past
from successors.space import SuccessorSpace


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
        # crossover waits for a mate; alone (operators=[crossover]) it goes first without one (apply)
        available = [op for op in self.operators if op != "crossover" or mates] or list(self.operators)
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
