"""Execution `batched`: candidates of one shape train together as one stacked population.

The unit of work is tiny (a small MLP for a few hundred steps), so a per-model Python loop spends
most of its time in overhead. Here P models of the same layer shapes become one set of stacked
tensors, W: (P, in, out), and every step is one gathered batch (P, B, in), one `baddbmm` per layer,
one backward and one vectorised optimizer update for all P models.

Each model keeps its own recipe: learning rate, weight decay, dropout, batch size (rows past a
model's batch are masked out) and number of steps (a finished model's learning rate drops to 0).
Models are initialised and sampled exactly as `serial` does (same seeds, same batch plan), so with
no dropout the two give the same losses up to float rounding (a test holds them to 1e-4). Dropout
masks come from a generator of the population's own, so with dropout the two differ in that noise.
Candidates that cannot share a population (another depth, width, activation or optimizer, or a
family other than mlp) train in smaller groups, down to one at a time.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from loop.execution import (Quarantine, attempt, batch_plan, check_threads, check_time_limit, distillation_loss,
                            finish, quarantine_reason, start_model, use_threads)
from loop.inherit import distill_weight, linears, teacher_probs
from loop.prior import set_trunk
from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu}


def population_key(candidate: Candidate, shape: TaskShape | None = None) -> tuple | None:
    """Candidates with equal keys can train as one population; None: train alone. Only MLPs on
    float features stack (an MLP on tokens has a one-hot layer in front)."""
    genome = candidate.genome
    if genome.family != "mlp" or (shape is not None and shape.inputs != "features"):
        return None
    return (genome.arch["depth"], genome.arch["width"], genome.arch["activation"], genome.recipe["optimizer"])


def column(values: list[float], device: torch.device) -> torch.Tensor:
    """Per-model scalars shaped (P, 1, 1) to broadcast over stacked weights."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def train_population(candidates: Sequence[Candidate], split: Split, shape: TaskShape,
                     time_limit_s: float, check_every: int = 25) -> list[Successor | Quarantined]:
    """Train same-shape MLP candidates as one stacked population."""
    device = torch.device(shape.device)
    count = len(candidates)
    started = [start_model(c, shape) for c in candidates]
    models, inherited = [m for m, _ in started], [how for _, how in started]
    frozen = [i for i, (c, m) in enumerate(zip(candidates, models)) if set_trunk(m, c.genome, split.x, c.parent is not None)]
    start = time.perf_counter()  # the trunk is shared, cached work: not the population's time
    layers_of = [linears(model) for model in models]
    weights = [torch.stack([layers[j].weight.detach().T for layers in layers_of]).contiguous().to(device)
               for j in range(len(layers_of[0]))]
    biases = [torch.stack([layers[j].bias.detach() for layers in layers_of]).unsqueeze(1).to(device)
              for j in range(len(layers_of[0]))]
    params = [t.requires_grad_() for pair in zip(weights, biases) for t in pair]
    trunk = (weights[0][frozen].detach().clone(), biases[0][frozen].detach().clone())

    # the batch plan of every model, padded to the longest run and the largest batch
    plans = [batch_plan(c, len(split), shape.max_steps) for c in candidates]
    steps = [len(p) for p in plans]
    rows = max(p.shape[1] for p in plans)
    index = torch.zeros(count, max(steps), rows, dtype=torch.long)
    valid = torch.zeros(count, max(steps), rows)
    for i, plan in enumerate(plans):
        index[i, :plan.shape[0], :plan.shape[1]] = plan
        valid[i, :plan.shape[0], :plan.shape[1]] = 1.0
    index, valid = index.to(device), valid.to(device)
    per_model_rows = valid[:, 0].sum(1)

    recipes = [c.genome.recipe for c in candidates]
    lr = torch.tensor([float(r["lr"]) for r in recipes], device=device)
    decay = column([float(r["weight_decay"]) for r in recipes], device)
    dropout = column([float(c.genome.arch["dropout"]) for c in candidates], device)
    use_dropout = bool((dropout > 0).any())
    # distillation: each model's weight on its teacher's distribution over the train rows
    teachers = [teacher_probs(c, split, shape) for c in candidates]
    distilling = any(t is not None for t in teachers)
    if distilling:
        soft = torch.stack([t if t is not None else torch.zeros(len(split), shape.n_classes) for t in teachers]).to(device)
        weight = torch.tensor([distill_weight(c.genome) for c in candidates], device=device).view(-1, 1)
        rows = torch.arange(count, device=device).view(-1, 1)  # model i reads its own teacher's rows
    noise = torch.Generator(device=device).manual_seed(candidates[0].seed)
    optimizer = str(recipes[0]["optimizer"])
    first = [torch.zeros_like(p) for p in params]  # momentum, or Adam's first moment
    second = [torch.zeros_like(p) for p in params]  # Adam's second moment
    activation = ACTIVATIONS[str(candidates[0].genome.arch["activation"])]
    last = torch.tensor(steps, device=device)
    alive = torch.ones(count, dtype=torch.bool, device=device)
    why: dict[int, str] = {}
    x, y = split.x.to(device), split.y.to(device)

    for t in range(max(steps)):
        batch = index[:, t]
        hidden = x[batch]  # (P, B, in): one gather for the whole population
        for j in range(len(weights) - 1):
            hidden = activation(torch.baddbmm(biases[j], hidden, weights[j]))
            if use_dropout:
                keep = torch.rand(hidden.shape, generator=noise, device=device) >= dropout
                hidden = hidden * keep / (1 - dropout)
        logits = torch.baddbmm(biases[-1], hidden, weights[-1])
        if distilling:
            loss_each = distillation_loss(logits, y[batch], soft[rows, batch], weight)
        else:
            loss_each = F.cross_entropy(logits.flatten(0, 1), y[batch].flatten(), reduction="none").view(count, -1)
        loss = (loss_each * valid[:, t]).sum(1) / per_model_rows  # each model's mean over its own batch
        active = alive & (t < last)
        grads = torch.autograd.grad(torch.where(active, loss, 0.0).sum(), params)
        step_lr = torch.where(active, lr, 0.0).view(-1, 1, 1)
        with torch.no_grad():
            update(optimizer, params, grads, first, second, step_lr, decay, t + 1)
            if frozen:  # a frozen trunk: its first layer goes back to where it started
                weights[0][frozen], biases[0][frozen] = trunk
        if (t + 1) % check_every == 0 or t + 1 == max(steps):
            for i in torch.nonzero(active & ~torch.isfinite(loss)).flatten().tolist():
                why[i] = f"training loss became {loss[i].item()} at step {t + 1}/{steps[i]}"
                alive[i] = False
            if time.perf_counter() - start > time_limit_s:
                for i in torch.nonzero(alive & (t + 1 < last)).flatten().tolist():
                    why[i] = (f"ran past its time limit of {time_limit_s:g} s at step {t + 1}/{steps[i]} "
                              f"(trained in a population of {count})")
                    alive[i] = False

    results: list[Successor | Quarantined] = []
    for i, (candidate, model, layers) in enumerate(zip(candidates, models, layers_of)):
        if i in why:
            results.append(Quarantined(candidate, why[i]))
            continue
        with torch.no_grad():
            for j, layer in enumerate(layers):
                layer.weight.copy_(weights[j][i].T)
                layer.bias.copy_(biases[j][i, 0])
        try:
            results.append(finish(candidate, model.to(device), x, y, steps[i], inherited[i]))
        except Quarantine as reason:
            results.append(Quarantined(candidate, str(reason)))
    return results


def update(optimizer: str, params, grads, first, second, lr: torch.Tensor, decay: torch.Tensor,
           step: int, momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
    """One optimizer step for all models at once, following torch.optim's SGD (momentum 0.9, L2),
    Adam (L2) and AdamW (decoupled decay) with a per-model learning rate and weight decay."""
    for p, g, m, v in zip(params, grads, first, second):
        if optimizer == "sgd":
            g = g + decay * p
            m.mul_(momentum).add_(g)
            p.sub_(lr * m)
            continue
        if optimizer == "adamw":
            p.mul_(1 - lr * decay)
        else:
            g = g + decay * p
        m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
        v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
        denominator = (v.sqrt() / math.sqrt(1 - betas[1] ** step)).add_(eps)
        p.sub_(lr / (1 - betas[0] ** step) * m / denominator)


@dataclass
class Batched:
    """Train same-shape candidates as stacked populations. Selected with `execution=batched`."""

    chunk: int = 32  # most models in one population: bounds memory, keeps a group's weights in cache
    time_limit_s: float = 60.0  # per population; past it, its unfinished members are quarantined
    threads: int | None = None  # torch threads; 1 when several runs share the machine (see docs/scale.md)

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"execution.chunk must be a whole number >= 1, got {self.chunk!r}")
        check_time_limit(self.time_limit_s)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        use_threads(self.threads)
        split = data["train"]
        groups: dict[object, list[int]] = defaultdict(list)
        for i, candidate in enumerate(candidates):
            groups[population_key(candidate, task) or ("alone", i)].append(i)
        results: dict[int, Successor | Quarantined] = {}
        for members in groups.values():
            for at in range(0, len(members), self.chunk):
                chunk = members[at:at + self.chunk]
                for i, result in zip(chunk, self.train_group([candidates[i] for i in chunk], split, task)):
                    results[i] = result
        return [results[i] for i in range(len(candidates))]

    def train_group(self, group: list[Candidate], split: Split, task: TaskShape) -> list[Successor | Quarantined]:
        if len(group) == 1:
            return [attempt(group[0], split, task, self.time_limit_s)]
        try:
            return train_population(group, split, task, self.time_limit_s)
        except Exception as err:  # a broken group must not stop the loop
            return [Quarantined(c, quarantine_reason(err)) for c in group]
