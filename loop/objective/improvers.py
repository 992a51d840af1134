"""`objective=improvers`: what improvers are measured on, one level up (experiment=recursive_improver).

The items are task draws, one per row: (family, draw, inner seed), family as its index in
`loop.objective.families.FAMILIES`. The five splits the stages see hold different draws:

    train, proxy, audit, probe  -> meta-train families (the evaluator's proxy: meta-utility on proxy)
    truth                        -> held-out families: never seen by any selection, at either level

Every improver is measured on the same rows of a split, so two improvers' scores on it are paired
seed for seed. The families, draws and seeds are recorded in the config and hashed into the ledger
with the splits (`data/<split>`), like any objective's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from loop.objective.families import FAMILIES, check_families
from loop.objective.tasks import SPLITS
from loop.stages import Budget, Split, Task

OFFSETS = {split: 1000 * i for i, split in enumerate(SPLITS)}  # meta-train splits draw disjoint members


@dataclass
class Improvers:
    """Meta-train and held-out task families for improvers. Selected with `objective=improvers`."""

    budget: Budget  # outer generations and candidates (improvers proposed per generation); steps unused
    meta_train: Sequence[str]  # families the outer selection may see (train, proxy, audit, probe)
    held_out: Sequence[str]  # families only the truth split draws from
    seeds: int = 10  # task draws per split: the paired seeds of every meta-utility measurement
    seed: int = 0  # which draws and inner seeds the rows stand for

    def __post_init__(self) -> None:
        if not isinstance(self.budget, Budget):
            self.budget = Budget(**self.budget)
        self.meta_train = check_families(self.meta_train, "objective.meta_train")
        self.held_out = check_families(self.held_out, "objective.held_out")
        both = sorted(set(self.meta_train) & set(self.held_out))
        if both:
            raise ValueError(f"objective.held_out lists {', '.join(both)}, also in objective.meta_train: a held-out "
                             f"family must never inform a selection; list each family in one of them only")
        for name, value, low in (("seeds", self.seeds, 2), ("seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"objective.{name} must be a whole number >= {low}, got {value!r}")

    def rows(self, split: str) -> list[tuple[str, int, int]]:
        """The split's task draws: seed i is family i mod n, member i // n (+ the split's offset)."""
        from loop.engine import derive_seed

        families = self.held_out if split == "truth" else self.meta_train
        offset = 0 if split == "truth" else OFFSETS[split]
        return [(families[i % len(families)], offset + i // len(families), derive_seed(self.seed, split, i))
                for i in range(self.seeds)]

    def prepare(self) -> Task:
        import torch

        index = {name: i for i, name in enumerate(FAMILIES)}
        splits = {split: Split(torch.tensor([[index[f], d, s] for f, d, s in self.rows(split)], dtype=torch.long),
                               torch.zeros(self.seeds, dtype=torch.long)) for split in SPLITS}
        return Task(f"improvers (meta-train {', '.join(self.meta_train)}; held out {', '.join(self.held_out)})",
                    splits, self.budget, in_features=3, n_classes=1, inputs="tasks")


def task_draw(row: Sequence[int]) -> tuple[str, int, int]:
    """A split row back as (family, draw, inner seed)."""
    family, draw, seed = (int(v) for v in row)
    return list(FAMILIES)[family], draw, seed
