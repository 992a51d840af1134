"""Scenario objectives for evaluator-gaming studies (docs/gaming.md): the data a flawed proxy
needs in order to be flawed, built on the plain objectives.

`objective=digits_shortcut`: the digits, where the train and proxy splits come from a biased source
on which a spurious feature predicts the label, and the audit, probe and truth splits are clean.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from loop.objective.tasks import Digits
from loop.stages import Split, Task

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
