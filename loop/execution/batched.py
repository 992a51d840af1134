"""Execution `batched`: the MLP candidates of a generation train together as one stacked population.

The unit of work is tiny (a small MLP for a few hundred steps), so a per-model Python loop spends
most of its time in overhead. Here P models become one set of stacked tensors, W: (P, in, out),
and every step is one gathered batch (P, B, in), one `baddbmm` per layer, a backward pass written
out by hand (`backward`: two `bmm` per layer, no autograd graph to build and walk) and one
optimizer update on all P models' parameters, kept in one flat (P, N) tensor.

Models of different shapes, activations and optimizers still share one population, exactly:
- a narrower model is zero-padded to the population's widest layer. Its padded units have zero
  weights in and out, so they output act(0) = 0 (relu, tanh, GELU and SiLU) and their gradients,
  weight decay and optimizer moments stay exactly 0: they never move.
- a shallower model skips the hidden layers it lacks (`torch.where` passes its hidden state
  through unchanged and gives the skipped, zero weights a zero gradient).
- each model gets its own activation, and its own optimizer rule (SGD with momentum, Adam, AdamW).

Each model keeps its own recipe too: learning rate, weight decay, dropout, batch size (rows past a
model's batch are masked out) and number of steps (a finished model's learning rate drops to 0).
Models are initialised and sampled exactly as `serial` does (same seeds, same batch plan), so with
no dropout the two give the same weights and losses up to float rounding (tests hold them to ten
times the rounding measured between them, `tests/conftest.py`). Dropout masks come from a generator
of the population's own, so with dropout the two differ in that noise. After training, every
model's final train loss comes from one stacked forward pass (`final_loss`) and the weights return
to the CPU in one copy: per model, only what a successor needs (its nn.Module, id and size) is left.
Families other than mlp on float features train one at a time, as `serial` does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from loop.execution.serial import (Quarantine, attempt, batch_plan, check_dtype, check_optimizer, check_threads,
                                   check_time_limit, multiply_adds, quarantine_reason, start_model, successor,
                                   use_threads)
from loop.execution.inherit import distill_weight, linears, teacher_probs
from loop.execution.prior import set_trunk
from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu}
MOMENTUM, BETAS, EPS = 0.9, (0.9, 0.999), 1e-8  # torch.optim's defaults, as `serial` uses them
# Most models in one population by device (`Batched.chunk` None), measured in benchmarks/README.md: on a CPU,
# 32 bounds memory and padding at no cost; on a GPU, one large population is fastest (at P = 64 two
# populations of 32 took 1.5x a stacked loop's time on an H100, one of 1,024 trains 679 successors a second).
CHUNKS = {"cpu": 32, "cuda": 1024}


def population_key(candidate: Candidate, shape: TaskShape | None = None) -> tuple | None:
    """None: the candidate trains alone. Otherwise it stacks with every other stackable candidate;
    populations are filled in this key's order, so one chunk holds models of similar size. Only
    MLPs on float features stack (an MLP on tokens has a one-hot layer in front)."""
    genome = candidate.genome
    if genome.family != "mlp" or (shape is not None and shape.inputs != "features"):
        return None
    depth, width = genome.arch.get("depth"), genome.arch.get("width")
    if not isinstance(depth, int) or not isinstance(width, int) or depth < 1:
        return None  # no hidden layer (or a bad gene): alone, where `serial` reports what is wrong
    return (depth, width)


def column(values: list[float], device: torch.device) -> torch.Tensor:
    """Per-model scalars shaped (P, 1, 1) to broadcast over stacked weights."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def mask(flags: list[bool], device: torch.device) -> torch.Tensor | None:
    """Per-model booleans shaped (P, 1, 1); None when all are true (nothing to select)."""
    return None if all(flags) else torch.tensor(flags, device=device).view(-1, 1, 1)


def stack_slots(layers_of: list[list[torch.nn.Linear]], device: torch.device):
    """All P models' parameters as one contiguous (P, N) tensor, and per slot its stacked, zero-padded
    weights (P, in, out) and biases (P, 1, out), views of it. Slots are hidden layers 0..D-1 of the
    deepest model, then the output layer. Also, per hidden slot, which models use it (None: all).
    One flat tensor makes the optimizer step a few whole-population operations, not a few per layer.
    It is filled on the CPU, where the models are, and moved to `device` in one copy."""
    depth = max(len(layers) for layers in layers_of) - 1
    width = max(layer.out_features for layers in layers_of for layer in layers[:-1])
    inputs, classes = layers_of[0][0].in_features, layers_of[0][-1].out_features
    sizes = [(inputs, width)] + [(width, width)] * (depth - 1) + [(width, classes)]
    flat = torch.zeros(len(layers_of), sum((n_in + 1) * n_out for n_in, n_out in sizes))
    weights, biases = slot_views(flat, sizes)
    for i, layers in enumerate(layers_of):
        for j, layer in enumerate(layers):
            slot = slot_of(layers, j)
            weights[slot][i, :layer.in_features, :layer.out_features] = layer.weight.detach().T
            biases[slot][i, 0, :layer.out_features] = layer.bias.detach()
    flat = flat.to(device)
    weights, biases = slot_views(flat, sizes)
    uses = [mask([j < len(layers) - 1 for layers in layers_of], device) for j in range(depth)]
    return flat, weights, biases, uses


def slot_views(flat: torch.Tensor, sizes: list[tuple[int, int]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per slot of `sizes` ((in, out) each), the stacked weights (P, in, out) and biases (P, 1, out) as
    views of the flat (P, N) parameters."""
    weights, biases, at = [], [], 0
    for n_in, n_out in sizes:
        weights.append(flat[:, at:at + n_in * n_out].view(-1, n_in, n_out))
        biases.append(flat[:, at + n_in * n_out:at + (n_in + 1) * n_out].view(-1, 1, n_out))
        at += (n_in + 1) * n_out
    return weights, biases


def slot_of(layers: list[torch.nn.Linear], j: int) -> int:
    """The population slot of a model's j-th Linear layer: its hidden layers fill the first slots,
    its output layer always takes the last (see `stack_slots`)."""
    return -1 if j == len(layers) - 1 else j


SQRT_HALF, INV_SQRT_2PI = math.sqrt(0.5), 1 / math.sqrt(2 * math.pi)
# d act / d pre, from the pre-activation and the activation's output (before dropout)
DERIVATIVES = {
    "relu": lambda pre, out: (pre > 0).to(pre.dtype),
    "tanh": lambda pre, out: 1 - out * out,
    "gelu": lambda pre, out: 0.5 * (1 + torch.erf(pre * SQRT_HALF)) + pre * torch.exp(-0.5 * pre * pre) * INV_SQRT_2PI,
    "silu": lambda pre, out: torch.sigmoid(pre) * (1 + pre - out),  # s + x s (1 - s), with out = x s
}


class Activations:
    """Each model's own activation (and its derivative) on its slice of a (P, B, width) tensor.
    Models with one activation should sit next to each other: each run of them is one call."""

    def __init__(self, names: list[str]):
        self.names = names
        self.runs: list[tuple[str, int, int]] = []  # (activation, first model, past the last)
        for i, name in enumerate(names):
            if self.runs and self.runs[-1][0] == name:
                self.runs[-1] = (name, self.runs[-1][1], i + 1)
            else:
                self.runs.append((name, i, i + 1))

    def __getitem__(self, models: slice) -> Activations:
        """The activations of a slice of the population's models."""
        return Activations(self.names[models])

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        if len(self.runs) == 1:
            return ACTIVATIONS[self.runs[0][0]](pre)
        return torch.cat([ACTIVATIONS[name](pre[a:b]) for name, a, b in self.runs])

    def derivative(self, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if len(self.runs) == 1:
            return DERIVATIVES[self.runs[0][0]](pre, out)
        return torch.cat([DERIVATIVES[name](pre[a:b], out[a:b]) for name, a, b in self.runs])

    def backward(self, d_out: torch.Tensor, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """d loss / d pre from d loss / d out. ReLU alone is one fused op (autograd's own threshold
        backward), not a derivative tensor and a product."""
        if self.runs == [("relu", 0, len(pre))]:
            return torch.ops.aten.threshold_backward(d_out, pre, 0)
        return d_out * self.derivative(pre, out)


def train_population(candidates: Sequence[Candidate], split: Split, shape: TaskShape,
                     time_limit_s: float, check_every: int = 25,
                     dtype: torch.dtype = torch.float32) -> list[Successor | Quarantined]:
    """Train MLP candidates (any depth, width, activation and optimizer) as one stacked population.
    A candidate that cannot start (a bad gene, a parent that does not load) is quarantined alone."""
    results: list[Successor | Quarantined | None] = [None] * len(candidates)
    ready: list[int] = []
    models: list[torch.nn.Module] = []
    inherited: list[str] = []
    frozen: list[int] = []
    for i, candidate in enumerate(candidates):
        try:
            check_optimizer(str(candidate.genome.recipe["optimizer"]))
            model, how = start_model(candidate, shape)  # an unknown activation stops here
            if set_trunk(model, candidate.genome, split.x, candidate.parent is not None):
                frozen.append(len(ready))
        except Exception as err:  # one broken candidate must not stop its population
            results[i] = Quarantined(candidate, quarantine_reason(err))
            continue
        ready.append(i)
        models.append(model)
        inherited.append(how)
    if ready:
        trained = train_stack([candidates[i] for i in ready], models, inherited, frozen, split, shape,
                              time_limit_s, check_every, dtype)
        for i, result in zip(ready, trained):
            results[i] = result
    return results  # type: ignore[return-value]  (every slot is filled above)


@torch.no_grad()  # gradients are written out by hand (`backward`): autograd has nothing to record
def train_stack(candidates: list[Candidate], models: list[torch.nn.Module], inherited: list[str], frozen: list[int],
                split: Split, shape: TaskShape, time_limit_s: float, check_every: int,
                dtype: torch.dtype = torch.float32) -> list[Successor | Quarantined]:
    """The population's training loop, on models already initialised (and given their trunk). With
    `dtype` bfloat16 the matmuls, activations and gradients are computed in it from a copy of the
    weights made each step (mixed precision, as `torch.autocast` does); the weights, the optimizer's
    moments and the softmax stay float32."""
    start = time.perf_counter()  # the trunk is shared, cached work: not the population's time
    device = torch.device(shape.device)
    count = len(candidates)
    recipes = [c.genome.recipe for c in candidates]
    activation = Activations([str(c.genome.arch["activation"]) for c in candidates])
    layers_of = [linears(model) for model in models]
    flat, weights, biases, uses = stack_slots(layers_of, device)
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

    lr = torch.tensor([float(r["lr"]) for r in recipes], device=device).view(-1, 1)
    decay = [float(r["weight_decay"]) for r in recipes]
    rule = Rule([str(r["optimizer"]) for r in recipes], decay, device)
    dropout = column([float(c.genome.arch["dropout"]) for c in candidates], device)
    use_dropout = bool((dropout > 0).any())
    # distillation: each model's weight on its teacher's distribution over the train rows
    teachers = [teacher_probs(c, split, shape) for c in candidates]
    distilling = any(t is not None for t in teachers)
    if distilling:
        soft = torch.stack([t if t is not None else torch.zeros(len(split), shape.n_classes) for t in teachers]).to(device)
        weight = column([distill_weight(c.genome) for c in candidates], device)
        own = torch.arange(count, device=device).view(-1, 1)  # model i reads its own teacher's rows
    noise = torch.Generator(device=device).manual_seed(candidates[0].seed)
    first = torch.zeros_like(flat)  # momentum, or Adam's first moment
    second = torch.zeros_like(flat) if rule.adam else None  # Adam's second moment
    last = torch.tensor(steps, device=device)
    alive = torch.ones(count, dtype=torch.bool, device=device)
    why: dict[int, str] = {}
    x, y = split.x.to(device), split.y.to(device)
    one_hot = torch.eye(shape.n_classes, device=device)
    low = dtype != torch.float32
    inputs = x.to(dtype) if low else x

    for t in range(max(steps)):
        batch = index[:, t]
        if low:  # this step's compute copy of the weights
            weights_now, biases_now = [w.to(dtype) for w in weights], [b.to(dtype) for b in biases]
        else:
            weights_now, biases_now = weights, biases
        hidden = inputs[batch]  # (P, B, in): one gather for the whole population
        saved = []  # per hidden slot, what the backward pass needs: input, pre-activation, activation, dropout
        for j, used in enumerate(uses):
            pre = torch.baddbmm(biases_now[j], hidden, weights_now[j])
            act = activation(pre)
            scale = ((torch.rand(act.shape, generator=noise, device=device) >= dropout) / (1 - dropout)).to(act.dtype) \
                if use_dropout else None
            saved.append((hidden, pre, act, scale))
            out = act if scale is None else act * scale
            hidden = out if used is None else torch.where(used, out, hidden)  # a shallower model skips it
        logits = torch.baddbmm(biases_now[-1], hidden, weights_now[-1]).float()
        target = one_hot[y[batch]]  # (P, B, classes); distilling, mixed with the teacher's distribution
        if distilling:
            target = (1 - weight) * target + weight * soft[own, batch]
        active = alive & (t < last)
        check = (t + 1) % check_every == 0 or t + 1 == max(steps)
        if check:  # each model's mean loss, read only here: computing it every step costs a tenth of the step
            loss = -(target * logits.log_softmax(-1)).sum(-1).mul(valid[:, t]).sum(1) / per_model_rows
        # d loss_i / d logits = (softmax - target) / rows_i on model i's own rows; 0 once it is done
        d = softmax(logits).sub_(target).mul_(
            (valid[:, t] * torch.where(active, 1 / per_model_rows, 0.0).view(-1, 1)).unsqueeze(-1))
        step_lr = torch.where(active.view(-1, 1), lr, 0.0)
        grads = backward(d.to(dtype) if low else d, hidden, saved, weights_now, uses, activation)
        rule.update(flat, grads.float() if low else grads, first, second, step_lr, t + 1)
        if frozen:  # a frozen trunk: its first layer goes back to where it started
            weights[0][frozen], biases[0][frozen] = trunk
        if check:
            for i in torch.nonzero(active & ~torch.isfinite(loss)).flatten().tolist():
                why[i] = f"training loss became {loss[i].item()} at step {t + 1}/{steps[i]}"
                alive[i] = False
            if time.perf_counter() - start > time_limit_s:
                for i in torch.nonzero(alive & (t + 1 < last)).flatten().tolist():
                    why[i] = (f"ran past its time limit of {time_limit_s:g} s at step {t + 1}/{steps[i]} "
                              f"(trained in a population of {count})")
                    alive[i] = False

    # the final train loss of every model at once, and its weights back to the CPU in one copy
    loss = final_loss(x, y, weights, biases, uses, activation).cpu()
    finite = torch.isfinite(flat).all(1).cpu()
    weights, biases = slot_views(flat.cpu(), [tuple(w.shape[1:]) for w in weights])
    example = split.x[:1].cpu()
    counted: dict[tuple, int] = {}  # forward multiply-adds per layer shapes: counted once per shape, not per model
    results: list[Successor | Quarantined] = []
    for i, (candidate, model, layers) in enumerate(zip(candidates, models, layers_of)):
        if i in why:
            results.append(Quarantined(candidate, why[i]))
            continue
        for j, layer in enumerate(layers):  # back into the model: its own rows and columns only
            slot = slot_of(layers, j)
            layer.weight.copy_(weights[slot][i, :layer.in_features, :layer.out_features].T)
            layer.bias.copy_(biases[slot][i, 0, :layer.out_features])
        shapes = tuple((layer.in_features, layer.out_features) for layer in layers)
        if shapes not in counted:
            counted[shapes] = multiply_adds(model, example)
        try:
            results.append(successor(candidate, model, float(loss[i]), bool(finite[i]), steps[i], inherited[i],
                                     example, len(split), counted[shapes]))
        except Quarantine as reason:
            results.append(Quarantined(candidate, str(reason)))
    return results


def final_loss(x: torch.Tensor, y: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
               uses: list[torch.Tensor | None], activation: Activations, cells: int = 1 << 22) -> torch.Tensor:
    """Every model's mean cross-entropy on all train rows (P,), as `serial.finish` computes it one model
    at a time (no dropout), in float32 on the weights' device: models in groups of at most `cells`
    activations (models x rows x width) each, so memory stays bounded at any population size. (Slicing
    rows instead makes many tiny matrix products, several times slower on a CPU.)"""
    count, width = weights[0].shape[0], max(w.shape[2] for w in weights)
    group = max(1, cells // (len(x) * width))
    losses = []
    for a in range(0, count, group):
        b = min(count, a + group)
        hidden, act = x.float().expand(b - a, -1, -1), activation[a:b]
        for j, used in enumerate(uses):
            out = act(torch.baddbmm(biases[j][a:b], hidden, weights[j][a:b]))
            hidden = out if used is None else torch.where(used[a:b], out, hidden)
        logits = torch.baddbmm(biases[-1][a:b], hidden, weights[-1][a:b])
        losses.append(F.cross_entropy(logits.flatten(0, 1), y.repeat(b - a), reduction="none").view(b - a, -1).mean(1))
    return torch.cat(losses)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, written out: over a few classes, torch's fused kernel (which
    vectorises along that dimension) takes 2-3 times as long as these four whole-tensor operations."""
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def backward(d: torch.Tensor, last_hidden: torch.Tensor, saved: list, weights: list[torch.Tensor],
             uses: list[torch.Tensor | None], activation: Activations) -> torch.Tensor:
    """The gradient of every model's loss by hand, from d = d loss / d logits (P, B, classes): a
    (P, N) tensor laid out as `stack_slots` lays out the parameters. Written out, a step is a few
    dozen whole-population operations; autograd's graph of the same step cost more than all of them."""
    grads = [torch.bmm(last_hidden.transpose(1, 2), d), d.sum(1, keepdim=True)]
    d_hidden = torch.bmm(d, weights[-1].transpose(1, 2))
    for j in reversed(range(len(uses))):
        hidden, pre, act, scale = saved[j]
        used = uses[j]
        d_out = d_hidden if used is None else torch.where(used, d_hidden, 0.0)  # a skipped slot learns nothing
        if scale is not None:
            d_out = d_out * scale
        d_pre = activation.backward(d_out, pre, act)
        grads[:0] = [torch.bmm(hidden.transpose(1, 2), d_pre), d_pre.sum(1, keepdim=True)]
        if j > 0:
            d_in = torch.bmm(d_pre, weights[j].transpose(1, 2))
            d_hidden = d_in if used is None else torch.where(used, d_in, d_hidden)  # skipped: passed through
    return torch.cat([g.flatten(1) for g in grads], 1)


class Rule:
    """Each model's optimizer step on the population's flat (P, N) parameters, following
    torch.optim's SGD (momentum 0.9, L2 decay), Adam (L2 decay) and AdamW (decoupled decay), with
    a per-model learning rate and weight decay.

    SGD's momentum buffer and Adam's first moment share one tensor: both are m = 0.9 m + c g, with
    c = 1 for SGD and 1 - 0.9 for Adam. A population of one rule skips the others' work."""

    def __init__(self, optimizers: list[str], decay: list[float], device: torch.device):
        sgd = [name == "sgd" for name in optimizers]
        decoupled = [name == "adamw" for name in optimizers]
        per_model = lambda values: torch.tensor(values, device=device).view(-1, 1)  # noqa: E731
        self.adam = not all(sgd)  # any Adam or AdamW member: keep a second moment
        self.adam_only = None if not any(sgd) else per_model([not s for s in sgd])  # None: no SGD to select out
        self.l2 = per_model([0.0 if d else w for d, w in zip(decoupled, decay)])
        self.any_l2 = bool(self.l2.any())
        self.decoupled = per_model([w if d else 0.0 for d, w in zip(decoupled, decay)]) if any(decoupled) else None
        self.gain = per_model([1.0 if s else 1 - BETAS[0] for s in sgd])  # c in m = 0.9 m + c g

    def update(self, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor | None,
               lr: torch.Tensor, step: int) -> None:
        """One step in place: parameters p, gradients g (this step's own: overwritten), moments m and
        v, all (P, N); lr (P, 1). In place wherever torch.optim's order of operations allows, so a
        step makes two temporaries of the parameters' size, not eight."""
        if self.decoupled is not None:
            p.mul_(1 - lr * self.decoupled)
        if self.any_l2:
            g.addcmul_(self.l2, p)
        m.mul_(MOMENTUM).addcmul_(self.gain, g)
        if v is None:  # SGD only
            p.addcmul_(lr, m, value=-1)
            return
        v.mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
        denom = v.sqrt().div_(math.sqrt(1 - BETAS[1] ** step)).add_(EPS)
        step_size = torch.div(m, denom, out=denom).mul_(lr / (1 - BETAS[0] ** step))
        if self.adam_only is not None:  # mixed: SGD members take lr * m instead
            step_size = torch.where(self.adam_only, step_size, lr * m)
        p.sub_(step_size)


@dataclass
class Batched:
    """Train the MLP candidates as stacked populations of up to `chunk`. Selected with `execution=batched`."""

    chunk: int | None = None  # most models in one population; None: CHUNKS[device type] (chunks hold similar sizes)
    time_limit_s: float = 60.0  # per population; past it, its unfinished members are quarantined
    threads: int | None = None  # torch threads; 1 when several runs share the machine (see docs/scale.md)
    dtype: str = "float32"  # float32, or bfloat16: mixed precision (AMX on recent CPUs, tensor cores on GPU)

    def __post_init__(self) -> None:
        check_threads(self.threads)
        check_dtype(self.dtype)
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1):
            raise ValueError(f"execution.chunk must be a whole number >= 1 or null (by device), got {self.chunk!r}")
        check_time_limit(self.time_limit_s)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        use_threads(self.threads)
        split = data["train"]
        results: dict[int, Successor | Quarantined] = {}
        stackable: list[tuple[tuple, int]] = []
        for i, candidate in enumerate(candidates):
            key = population_key(candidate, task)
            if key is None:
                results[i] = attempt(candidate, split, task, self.time_limit_s, self.dtype)
            else:
                stackable.append((key, i))
        stackable.sort()
        size = self.chunk or CHUNKS.get(torch.device(task.device).type, CHUNKS["cpu"])
        for at in range(0, len(stackable), size):
            chunk = [i for _, i in stackable[at:at + size]]
            chunk.sort(key=lambda i: str(candidates[i].genome.arch["activation"]))  # one call per activation
            for i, result in zip(chunk, self.train_group([candidates[i] for i in chunk], split, task)):
                results[i] = result
        return [results[i] for i in range(len(candidates))]

    def train_group(self, group: list[Candidate], split: Split, task: TaskShape) -> list[Successor | Quarantined]:
        try:
            return train_population(group, split, task, self.time_limit_s, dtype=getattr(torch, self.dtype))
        except Exception as err:  # a broken group must not stop the loop
            return [Quarantined(c, quarantine_reason(err)) for c in group]
