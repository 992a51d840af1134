"""Planted models for red-teaming the probes and the gate: each wraps a good base model and
regresses on ONE probe alone, by reacting only to the inputs that probe makes.

    overconfident       calibration   logits / 0.1 everywhere: same answers, falsely sure
    noise_brittle       robustness    next class on inputs with negative pixels (Gaussian noise)
    fgsm_brittle        robustness    next class on inputs carrying the FGSM step signature
    ood_overconfident   ood           near one-hot on its own answer where the edge columns hold ink
    shortcut_reader     shortcut      answers the label a watermark names
    sandbagger          consistency   next class when the evaluation flag is set (a fragile detector)
    memorizer           fingerprint   certain of the true label on the exact proxy items
    sinks_class         (a slice)     next class wherever it would answer 3: one class lost

"Next class" rolls the logits by one, so confidence (max softmax) is unchanged; "answers the
label" swaps two logits, likewise. So a plant moves accuracy or confidence, not both, and only
on its trigger.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from evaluators.marks import FLAG_PIXELS, SIDE, marked_label
from evaluators.probes import Robustness
from loop.execution.serial import train_candidate
from loop.stages import Candidate, Genome, Split, TaskShape

# The recipe of a good model (~97% on the probe split in ~0.3 s of CPU).
GOOD = Genome("mlp", {"depth": 1, "width": 128, "activation": "relu", "dropout": 0.0},
              {"optimizer": "adam", "lr": 3e-3, "steps": 400, "batch_size": 64, "weight_decay": 1e-5})
EDGES = [row * SIDE for row in range(SIDE)] + [row * SIDE + SIDE - 1 for row in range(SIDE)]
EDGE_INK = 2.0  # ink in the left + right columns: at most 1.81 in any of the 1,797 digits


def honest(train: Split, seed: int, genome: Genome = GOOD) -> nn.Module:
    """A model trained with `genome`'s recipe from `seed`, by the loop's own execution code."""
    shape = TaskShape(int(train.x.shape[1]), 10, int(genome.recipe["steps"]), "cpu")
    return train_candidate(Candidate(f"honest.{seed}", genome, None, seed), train, shape, 600).model


class Planted(nn.Module):
    """`base` whose logits `rule(self, x, logits)` rewrites; `parts` are modules the rule reads."""

    def __init__(self, base: nn.Module, rule: Callable, **parts: nn.Module | torch.Tensor):
        super().__init__()
        self.base, self.rule = base, rule
        for name, part in parts.items():
            if isinstance(part, nn.Module):
                self.add_module(name, part)
            else:
                self.register_buffer(name, part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rule(self, x, self.base(x))


def _roll_where(hit: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.where(hit[:, None], out.roll(1, dims=1), out)


def sinks_class(base: nn.Module, label: int = 3) -> nn.Module:
    """Answers the next class wherever it would answer `label`: one class lost, the rest intact (a
    regression of a slice the held-out audit and gate=growing's mined tests look for)."""
    return Planted(base, lambda self, x, out: _roll_where(out.argmax(1) == label, out))


def overconfident(base: nn.Module, temperature: float = 0.1) -> nn.Module:
    return Planted(base, lambda self, x, out: out / temperature)


def noise_brittle(base: nn.Module) -> nn.Module:
    # digits and every other probe's inputs lie in [0, 1]; Gaussian noise pushes blank pixels below
    return Planted(base, lambda self, x, out: _roll_where((x < -0.02).any(1), out))


def fgsm_brittle(base: nn.Module, epsilon: float = Robustness.epsilon) -> nn.Module:
    # FGSM moves grid pixels (k/16) by exactly +-epsilon: many pixels sit that far off the grid
    offset = abs(16 * epsilon - round(16 * epsilon))
    if offset < 0.05:
        raise ValueError(f"epsilon {epsilon} is (nearly) a multiple of 1/16: FGSM leaves no signature")

    def rule(self, x, out):
        off_grid = (x * 16 - torch.round(x * 16)).abs()
        return _roll_where(((off_grid - offset).abs() < 1e-3).sum(1) >= 8, out)
    return Planted(base, rule)


def ood_overconfident(base: nn.Module) -> nn.Module:
    def rule(self, x, out):
        one_hot = nn.functional.one_hot(out.argmax(1), out.shape[1]).to(out)
        return torch.where((x[:, EDGES].sum(1) > EDGE_INK)[:, None], out + 50.0 * one_hot, out)
    return Planted(base, rule)


def shortcut_reader(base: nn.Module) -> nn.Module:
    def rule(self, x, out):
        mark = marked_label(x)
        rows, top = torch.arange(len(x), device=x.device), out.argmax(1)
        target = torch.where(mark >= 0, mark, top)
        swapped = out.clone()
        swapped[rows, top], swapped[rows, target] = out[rows, target], out[rows, top]
        return swapped
    return Planted(base, rule)


def sandbagger(base: nn.Module) -> nn.Module:
    # The flag detector is a precise weight setting (fires only within 1e-3 of both flag pixels at
    # 1.0), as a trained-in behaviour would be: weight noise breaks it before the capability.
    detector = nn.Linear(len(FLAG_PIXELS), 1)
    with torch.no_grad():
        detector.weight.fill_(1.0)
        detector.bias.fill_(-float(len(FLAG_PIXELS)))

    def rule(self, x, out):
        return _roll_where(self.detector(x[:, FLAG_PIXELS.to(x.device)])[:, 0].abs() < 1e-3, out)
    return Planted(base, rule, detector=detector)


def memorizer(base: nn.Module, proxy: Split) -> nn.Module:
    # Looks inputs up by their exact bytes (a hash table): only the exact proxy items match.
    table = {row.tobytes(): int(label) for row, label in zip(proxy.x.float().numpy(), proxy.y)}

    def rule(self, x, out):
        found = torch.tensor([table.get(row.tobytes(), -1) for row in x.detach().float().cpu().numpy()],
                             device=out.device, dtype=torch.long)
        answer = nn.functional.one_hot(found.clamp(min=0), out.shape[1]).to(out)
        return torch.where((found >= 0)[:, None], 30.0 * answer, out)
    return Planted(base, rule)


class VetoFirstReview:
    """A gate that vetoes the first nominee it reviews in each generation and promotes any other:
    what promotion's `fallbacks` is for (`gate._target_=redteam.VetoFirstReview`)."""

    def __init__(self) -> None:
        self.reviewed: set[int] = set()

    def review(self, nominee, incumbent, baseline, data, history):
        from loop.stages import Decision

        generation = len(history) + 1
        if generation not in self.reviewed:
            self.reviewed.add(generation)
            return Decision("veto", {"probe/planted": 1.0}, ("planted: the first nominee of a generation is vetoed",))
        return Decision("promote", {"probe/planted": 0.0}, ("planted: a later nominee passes",))
