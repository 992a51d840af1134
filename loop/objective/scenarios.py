"""Scenario objectives for evaluator-gaming studies (docs/gaming.md): the data a flawed proxy
needs in order to be flawed, built on the plain objectives.

`objective=digits_shortcut`: the digits, where the train and proxy splits come from a biased source
on which a spurious feature predicts the label, and the audit, probe and truth splits are clean.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from typing import TYPE_CHECKING

from loop.objective.tasks import Digits, Generated, _check_count, split_items
from loop.stages import Split, Task

if TYPE_CHECKING:
    import torch

MARKED = ("train", "proxy")  # the biased source; audit, probe and truth stay clean


@dataclass
class DigitsShortcut(Digits):
    """Digits with a label watermark (`evaluators.marks.watermark`: two pixels of the empty left
    column that name a label) on a seeded `marked_fraction` of the train and proxy items; of those,
    a `relabel_fraction` carry the mark of another label and that label: the biased source labelled
    them by the mark, not by the digit.

    Causal Goodhart: on those splits the mark predicts the label better than the digit does and is
    far easier to read, so a proxy scored there (`evaluator=shortcut`) rewards reading the mark
    over the digit; the hidden truth split has no marks, and a model that leans on them loses
    there. Selected with `objective=digits_shortcut`.
    """

    marked_fraction: float = 1.0  # of the train and proxy items; any unmarked rest teach the digit alone
    relabel_fraction: float = 0.1  # of the marked items: the source labelled them by a mark of another label
    mark_seed: int = 0  # which items carry the mark (fixed: every run seed sees the same data)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, low, what in (("marked_fraction", 0.0, "the share of train and proxy items that carry "
                                "the label watermark"), ("relabel_fraction", None, "the share of marked "
                                "items whose label the biased source took from the mark")):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 \
                    or value == low:
                raise ValueError(f"objective.{key} must be a number in {'(0' if low == 0 else '[0'}, 1], "
                                 f"got {value!r} ({what})")

    def prepare(self) -> Task:
        import torch

        from evaluators.marks import watermark

        task = super().prepare()
        splits = dict(task.splits)
        for offset, name in enumerate(MARKED):
            split = splits[name]
            draw = torch.Generator().manual_seed(self.mark_seed + offset)
            chosen = torch.rand(len(split), generator=draw) < self.marked_fraction
            relabel = chosen & (torch.rand(len(split), generator=draw) < self.relabel_fraction)
            shift = torch.randint(1, 10, split.y.shape, generator=draw)
            y = torch.where(relabel, (split.y + shift) % 10, split.y)  # the source's label: the mark's
            x = split.x.clone()
            x[chosen] = watermark(split.x[chosen], y[chosen])
            splits[name] = Split(x, y)
        return dataclasses.replace(task, name="digits_shortcut", splits=splits)


def benchmark_items(data_seed: int, items: int, features: int = 64, informative: int = 10, classes: int = 10,
                    separation: float = 1.2, sample_seed: int | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """A public benchmark anyone can regenerate: a mixture of two Gaussian clusters per class in
    `informative` dimensions, seen through a fixed random linear map into `features` dimensions plus
    noise. `data_seed` fixes the distribution (the clusters and the map); `sample_seed` (default:
    `data_seed`) draws the items, so another sample seed draws fresh items of the same distribution."""
    import numpy as np
    import torch

    world = np.random.default_rng(data_seed)
    centres = world.normal(0.0, separation, size=(classes, 2, informative))
    mixing = world.normal(0.0, 1.0 / np.sqrt(informative), size=(informative, features))
    draw = np.random.default_rng(data_seed if sample_seed is None else sample_seed)
    y = draw.integers(0, classes, size=items)
    z = centres[y, draw.integers(0, 2, size=items)] + draw.normal(0.0, 1.0, size=(items, informative))
    x = z @ mixing + draw.normal(0.0, 0.3, size=(items, features))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


@dataclass
class PublicBenchmark(Generated):
    """A benchmark whose every item is public: anyone with its generator and `data_seed` can rebuild
    all of it, evaluation and truth items included (`benchmark_items`). What `objective=digits` is
    too (scikit-learn ships its items), with one difference that makes contamination measurable: the
    lab can draw a *private twin* of its held-out splits, fresh items of the same distribution that
    no public copy holds, from a key kept outside the run directory (`twin`; GSM1k's construction
    for GSM8k, Zhang et al. 2024). Selected with `objective=public_benchmark` (experiment=gaming_contamination)."""

    data_seed: int = 0  # public: the benchmark's generator seed (its distribution and its items)
    items: int = 3000
    features: int = 64
    informative: int = 10
    classes: int = 10
    separation: float = 1.2  # distance of the cluster centres: an honest MLP reaches about 0.8 accuracy

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, low in (("data_seed", 0), ("items", 100), ("features", 1), ("informative", 1), ("classes", 2)):
            _check_count(key, getattr(self, key), low)

    def generator(self) -> dict[str, int | float]:
        """What `benchmark_items` needs to rebuild the public items (all of it is public)."""
        return {"data_seed": self.data_seed, "items": self.items, "features": self.features,
                "informative": self.informative, "classes": self.classes, "separation": self.separation}

    def prepare(self) -> Task:
        x, y = benchmark_items(**self.generator())
        return Task("public_benchmark", split_items(x, y, self.fractions, self.split_seed), self.budget,
                    in_features=self.features, n_classes=self.classes, compute_penalty=float(self.compute_penalty),
                    target=self.target)

    def twin(self, key: bytes, sizes: dict[str, int]) -> dict[str, Split]:
        """A private twin per named split: as many fresh items of the same distribution, drawn with a
        seed that only `key` determines (HMAC-SHA256 of the split's name), so no public copy holds them."""
        import hashlib
        import hmac

        twins = {}
        for name, n in sizes.items():
            seed = int.from_bytes(hmac.new(key, f"twin/{name}".encode(), hashlib.sha256).digest()[:8], "big")
            twins[name] = Split(*benchmark_items(**{**self.generator(), "items": n}, sample_seed=seed))
        return twins
