"""A model as judge: successors scored by another model's answers, not by gold labels.

The self-confirming pipeline the mission's source warns of ("models learn to satisfy the evaluator
rather than become genuinely safer or more capable"), at toy scale: the judge labels the unlabelled
items of the evaluator's split (its labels are never read), and a successor scores the mean
probability it gives to the judge's answer on each item, so it scores highly by agreeing with the
judge, and more by agreeing confidently. Where a model is both what is improved and what judges
(`judge: incumbent`), it rates its own kind up (Pan et al. 2024, arXiv 2407.04549, where one model as
generator and evaluator rates its outputs up while human-judged quality stalls). `judge: baseline`
keeps the generation-0 model as a frozen judge.

The engine hands the judge in (`evaluate(model, data, judge=...)`): the incumbent or the generation-0
baseline, and for generation 0 itself, which has no incumbent yet, the model being scored (so the
baseline scores its own mean confidence). The hidden truth must be independent of the loop, so a
judge cannot be the truth evaluator (`rsi-loop` refuses `truth=` a judge before anything is written).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evaluators.predict import logits
from loop.stages import DataView, Scores

JUDGES = ("incumbent", "baseline")


@dataclass
class Judge:
    """Score a model by the probability it gives the judge's answers (`evaluator=self_judge`,
    `evaluator=frozen_judge`)."""

    judge: str = "incumbent"  # who judges: the incumbent (self-confirming) or the generation-0 baseline (frozen)
    split: str = "proxy"  # its items are used without their labels

    def __post_init__(self) -> None:
        if self.judge not in JUDGES:
            raise ValueError(f"evaluator.judge must be one of {list(JUDGES)} (the model that judges), "
                             f"got {self.judge!r}")

    def evaluate(self, model: nn.Module, data: DataView, judge: nn.Module | None = None) -> Scores:
        if judge is None:
            raise ValueError(f"evaluator {type(self).__name__}(judge={self.judge!r}) was given no judge model: it "
                             f"can only score successors inside a loop, which hands it the {self.judge}")
        x = data[self.split].x  # the labels of this split are never read
        answers = logits(judge, x).argmax(1)
        log_probs = torch.log_softmax(logits(model, x), 1)
        chosen = log_probs.argmax(1)
        return Scores(proxy=log_probs.exp()[torch.arange(len(answers)), answers].mean().item(), metrics={
            "agreement": (chosen == answers).float().mean().item(),
            "confidence": log_probs.max(1).values.exp().mean().item()})
