"""The `improver` family: a successor one level up (`loop/meta/`, `experiment=recursive_improver`).

An improver has no weights: it is its genome, the machinery an inner loop runs with (mutation rate
and step size, candidates per generation, promotion margin). It is a `torch.nn.Module` only so the
engine, its checkpoints (an empty safetensors file) and its ledger treat both levels alike; what
it is worth is measured by running inner loops with it (`evaluators.meta_utility`).
"""

from __future__ import annotations

from torch import nn

from loop.stages import Genome


class Improver(nn.Module):
    """An improver's genome in the shape of a model without parameters."""

    def __init__(self, genome: Genome):
        super().__init__()
        self.genome = genome

    def forward(self, *args, **kwargs):
        raise TypeError("an improver is not applied to inputs: its worth is what inner loops achieve with it "
                        "(evaluators.meta_utility.MetaUtility)")

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for part in ("recipe", "generator") for k, v in getattr(self.genome, part).items())
