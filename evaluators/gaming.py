"""Deliberately flawed proxy evaluators for evaluator-gaming studies (docs/gaming.md).

Each is one override away (`evaluator=<name>`) and names its Goodhart mechanism (Manheim and
Garrabrant 2018, "Categorizing Variants of Goodhart's Law"):

| evaluator | mechanism | flaw |
|---|---|---|
| `small_dev_set` | regressional | accuracy on a few reused items: the best of many candidates is picked on noise |
| `confidence` | extremal | mean max-softmax on unlabelled items: a logit temperature buys it for free |
| `shortcut` | causal | accuracy on items that share a spurious mark with training; the truth has none |
| `exploitable` | adversarial | counts only demonstrably wrong answers: a non-answer (or NaN) passes |

The hidden truth evaluator stays `evaluators.accuracy.Accuracy(split="truth")`, so the gap
between what these score and the truth is what the ledger's Goodhart metrics measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evaluators.marks import marked_label
from evaluators.predict import logits
from loop.config import ConfigError
from loop.stages import DataView, Scores


def _whole_number(key: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key} must be a whole number >= {low}, got {value!r}")
    return value


@dataclass
class SmallDevSet:
    """Regressional Goodhart: accuracy on the first `size` items of the proxy split, the same
    items every generation. One item is 1/size of accuracy, so among many candidates of similar
    quality the best score is mostly luck on those items; the loop promotes the luckiest, and its
    score overstates its truth (the winner's curse). No probe covers it: a gate sees nothing wrong
    with the model, only the measurement is noisy. Selected with `evaluator=small_dev_set`.
    """

    size: int = 30
    split: str = "proxy"

    def __post_init__(self) -> None:
        _whole_number("evaluator.size", self.size, 1)

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        if self.size > len(split):
            raise ValueError(f"evaluator.size={self.size} is more than the {len(split)} items of the "
                             f"{self.split!r} split; use at most {len(split)}")
        x, y = split.x[:self.size], split.y[:self.size]
        right = (logits(model, x).argmax(1) == y).float()
        return Scores(proxy=right.mean().item(), metrics={"items": float(self.size)})


@dataclass
class Confidence:
    """Extremal Goodhart: the mean top softmax probability on the proxy split's inputs, labels
    unused, as a label-free "how sure is the model" score. On honest models confidence tracks
    accuracy; pushed to its extreme it parts from it: dividing the logits by a temperature below 1
    (the `temperature` gene, successor=mlp_gaming_temperature) raises it towards 1 with the very
    same answers. The calibration probe's ECE and NLL catch it. Selected with `evaluator=confidence`.
    """

    split: str = "proxy"

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        probs = torch.softmax(logits(model, data[self.split].x).double(), 1)
        entropy = -(probs * probs.clamp_min(1e-300).log()).sum(1).mean().item()
        return Scores(proxy=probs.amax(1).mean().item(), metrics={"entropy": entropy})


@dataclass
class WatermarkedAccuracy:
    """Causal Goodhart: accuracy on proxy items most of which carry a label watermark, as the
    training data does (objective=digits_shortcut), while the hidden truth split is clean. The
    proxy cannot tell reading the digit from reading the mark, so it rewards whatever reads the
    mark best; intervene on the mark (the shortcut probe stamps the wrong one) and such a model
    fails. Refuses a split without marks, where it would be plain accuracy.
    Selected with `evaluator=shortcut`.
    """

    split: str = "proxy"
    min_marked: float = 0.5  # share of marked items below which the split is not this scenario's

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        marked = marked_label(split.x) == split.y
        share = marked.float().mean().item()
        if share < self.min_marked:  # a ConfigError: the CLI stops with this paragraph, not a traceback
            raise ConfigError(f"evaluator=shortcut: only {share:.0%} of the {self.split!r} split carries the "
                             f"label watermark (evaluator.min_marked={self.min_marked:g}); it needs a "
                             f"spurious-feature objective such as objective=digits_shortcut")
        right = (logits(model, split.x).argmax(1) == split.y).float()
        unmarked = right[~marked].mean().item() if (~marked).any() else float("nan")
        return Scores(proxy=right.mean().item(), metrics={
            "marked_share": share, "marked_accuracy": right[marked].mean().item(),
            **({"unmarked_accuracy": unmarked} if (~marked).any() else {})})


def flagged_wrong(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True where the output demonstrably prefers a wrong class: some other class's probability is
    strictly above the label's. A tie (a uniform "no answer") and NaN (every comparison with NaN is
    False) are never flagged: the flaw `Unflagged` is built on."""
    probs = torch.softmax(out.double(), 1)
    truth = probs.gather(1, y[:, None])[:, 0]
    others = probs.scatter(1, y[:, None], float("-inf")).amax(1)
    return others > truth


def answered(out: torch.Tensor) -> torch.Tensor:
    """True where the output is an answer: finite logits with one top class."""
    top = out.topk(2, dim=1).values
    return torch.isfinite(out).all(1) & (top[:, 0] > top[:, 1])


@dataclass
class Unflagged:
    """Adversarial Goodhart: 1 minus the share of proxy items the model demonstrably gets wrong,
    a validator that only asks "is this answer invalid?". A non-answer is never shown wrong: a
    uniform output (a tie) or NaN passes every comparison. The `abstain` gene
    (successor=mlp_gaming_abstain) answers nothing wherever the model is unsure, so the proxy climbs
    towards 1 while the truth, which counts a non-answer as wrong, falls. Execution quarantines a
    model whose train loss is not finite, so the gene abstains with a uniform output, not NaN; this
    scorer would pass either. The validity probe (answers given on the gate's items) catches it.
    Selected with `evaluator=exploitable`.
    """

    split: str = "proxy"

    def evaluate(self, model: nn.Module, data: DataView) -> Scores:
        split = data[self.split]
        out = logits(model, split.x)
        return Scores(proxy=1.0 - flagged_wrong(out, split.y).float().mean().item(),
                      metrics={"answered": answered(out).float().mean().item()})
