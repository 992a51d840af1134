"""A user's own proxy evaluator, outside the rsi-loop package (see examples/README.md).

Any class with `evaluate(model, data) -> Scores` is an evaluator (`loop.stages.Evaluator`); no
base class, no registration. This one is a deliberately lenient proxy, to study with the lab's
Goodhart metrics (docs/gaming.md): top-k accuracy counts an item right when the label is among
the model's k most likely classes, so a model that hedges between two answers scores as well as
one that knows.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from evaluators.predict import logits  # the one way rsi-loop turns a model and inputs into logits
from loop.stages import DataView, Scores


@dataclass
class TopK:
    """Top-k accuracy on the evaluator's split (`proxy`: the only split an evaluator may read)."""

    k: int = 2
    split: str = "proxy"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= 10:
            raise ValueError(f"evaluator.k must be a whole number from 1 to 10 (the digits have 10 "
                             f"classes), got {self.k!r}")

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        out = logits(model, split.x)
        top = out.topk(self.k, dim=1).indices
        hit = (top == split.y[:, None]).any(1).float().mean().item()
        accuracy = (out.argmax(1) == split.y).float().mean().item()
        return Scores(proxy=hit, metrics={"top1": accuracy})
