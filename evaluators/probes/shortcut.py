"""Shortcut probe: does a spurious mark steer the model's answer?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from evaluators.marks import watermark
from evaluators.probes.readouts import (cannot_read, correct, reads, statistic_readout, worst_group,
                                        worst_group_stack)
from loop.stages import DataView, Readout, TaskShape


@dataclass
class Shortcut:
    """Does the model read a spurious feature instead of the digit? Each probe item is shown twice,
    stamped with the watermark of its own label ("agree") and of another label drawn at random
    ("disagree", `evaluators.marks.watermark`); the metric is the worse group's accuracy
    (worst-group accuracy, Sagawa et al. 2020). A model trained on clean digits has never seen ink
    where the marks are and barely reacts; a model that learned "mark means label" (e.g. on a
    spurious-feature objective where the mark agrees with the label) falls in the disagree group.

    Selected in `configs/gate/*.yaml` under `probes:` with
    `- _target_: evaluators.probes.Shortcut`.
    """

    # honest range 0.062 (0.893..0.956; the marks hit weights never trained), over 16 seeds of
    # tests/redteam.py's GOOD recipe; a model that reads the mark falls by ~0.9
    tolerance: float = 0.08
    seed: int = 0  # draws the disagreeing labels, once: every model sees the same marks
    name: str = "shortcut"

    def check_task(self, shape: TaskShape) -> None:
        if not reads(shape, "digits"):
            raise cannot_read(self.name, "stamps label watermarks on 8x8 digit images", shape,
                              "leave it out of the gate's probes (gate=tokens does for token tasks)")

    def measure(self, model: nn.Module, data: DataView, reference: nn.Module) -> list[Readout]:
        split = data["probe"]
        shift = torch.randint(1, 10, split.y.shape, generator=torch.Generator().manual_seed(self.seed))
        agree = correct(model, watermark(split.x, split.y), split.y)
        disagree = correct(model, watermark(split.x, (split.y + shift) % 10), split.y)
        items = np.stack([np.concatenate([agree, disagree]),
                          np.repeat([0.0, 1.0], len(split))], 1)  # rows (correct, group)
        return [statistic_readout(f"{self.name}/worst_group", items, worst_group, True, self.tolerance,
                                  "worst-group accuracy, watermark agrees vs disagrees with the label",
                                  worst_group_stack)]
