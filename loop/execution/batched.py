"""Execution `batched`: the MLP candidates of a generation train together as one stacked population.

The unit of work is tiny (a small MLP for a few hundred steps), so a per-model Python loop spends
most of its time in overhead. Here P models become one set of stacked tensors, W: (P, in, out),
and every step is one gathered batch (P, B, in), one `baddbmm` per layer, a backward pass written
out by hand (`backward`: two `bmm` per layer, no autograd graph to build and walk, the gradients
written in place) and one optimizer update on all P models' parameters, kept in one flat tensor
(torch's fused Adam kernel moves every moment in one pass; `Rule`). Where it pays it is measured
(benchmarks/README.md): a product with a narrow result runs transposed on a CPU (`product`).

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
from loop.execution.stack import Rule, column, slot_of, slot_views, stack_slots
from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu}
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

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        """As calling it, but free to overwrite `pre`: ReLU alone runs in place (its backward pass
        reads the sign of its output, the same as its input's)."""
        if self.runs == [("relu", 0, len(pre))]:
            return pre.relu_()
        return self(pre)

    def derivative(self, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if len(self.runs) == 1:
            return DERIVATIVES[self.runs[0][0]](pre, out)
        return torch.cat([DERIVATIVES[name](pre[a:b], out[a:b]) for name, a, b in self.runs])

    def backward(self, d_out: torch.Tensor, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """d loss / d pre from d loss / d out, written over `d_out` (a tensor of the population's size
        fewer a layer). ReLU alone is one fused op (autograd's own threshold backward), not a
        derivative tensor and a product."""
        if self.runs == [("relu", 0, len(pre))]:
            return torch.ops.aten.threshold_backward.grad_input(d_out, pre, 0, grad_input=d_out)
        return d_out.mul_(self.derivative(pre, out))


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
    per_model_rows = valid[:, 0].sum(1)
    # step-major, so a step reads one contiguous block: the rows, their labels, and each row's weight in
    # its model's mean loss (0 past the model's batch and past its last step)
    x, y = split.x.to(device), split.y.to(device)
    index = index.transpose(0, 1).contiguous().to(device)  # (steps, P, rows)
    labels = y[index]
    share = (valid / per_model_rows.view(-1, 1, 1)).transpose(0, 1).unsqueeze(-1).contiguous().to(device)

    lr = column([float(r["lr"]) for r in recipes], device)
    decay = [float(r["weight_decay"]) for r in recipes]
    sizes = [tuple(w.shape[1:]) for w in weights]
    rule = Rule([str(r["optimizer"]) for r in recipes], decay, flat, sizes)
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
    # each step's gradients, written in place by `backward` (in the compute dtype, then into the rule's)
    low = dtype != torch.float32
    grad = torch.empty_like(flat, dtype=dtype) if low else rule.grad
    grad_slots = slot_views(grad, sizes)
    last = torch.tensor(steps, device=device)
    alive = torch.ones(count, dtype=torch.bool, device=device)
    why: dict[int, str] = {}
    one_hot = torch.eye(shape.n_classes, device=device)
    inputs = x.to(dtype) if low else x

    ends = set(steps)  # the steps where a model has just finished: the learning rates change
    stale = True  # the models still training (`active`) and their learning rates, to set again
    for t in range(max(steps)):
        batch = index[t]
        if low:  # this step's compute copy of the weights
            weights_now, biases_now = [w.to(dtype) for w in weights], [b.to(dtype) for b in biases]
        else:
            weights_now, biases_now = weights, biases
        hidden = inputs.index_select(0, batch.view(-1)).view(count, rows, -1)  # (P, B, in): one gather for all
        saved = []  # per hidden slot, what the backward pass needs: input, pre-activation, activation, dropout
        for j, used in enumerate(uses):
            pre = product(hidden, weights_now[j], biases_now[j])
            act = activation.forward(pre)
            scale = ((torch.rand(act.shape, generator=noise, device=device) >= dropout) / (1 - dropout)).to(act.dtype) \
                if use_dropout else None
            saved.append((hidden, pre, act, scale))
            out = act if scale is None else act * scale
            hidden = out if used is None else torch.where(used, out, hidden)  # a shallower model skips it
        logits = product(hidden, weights_now[-1], biases_now[-1]).float()
        # (P, B, classes); distilling, mixed with the teacher's distribution
        target = one_hot.index_select(0, labels[t].view(-1)).view(count, rows, -1)
        if distilling:
            target = (1 - weight) * target + weight * soft[own, batch]
        if stale or t in ends:  # a model has finished (or was stopped): it moves no more
            active = alive & (t < last)
            step_lr = torch.where(active.view(-1, 1, 1), lr, 0.0)
            stale = False
        check = (t + 1) % check_every == 0 or t + 1 == max(steps)
        if check:  # each model's mean loss, read only here: computing it every step costs a tenth of the step
            loss = -(target * logits.log_softmax(-1)).sum(-1, keepdim=True).mul(share[t]).sum(1).flatten()
        # d loss_i / d logits = (softmax - target) / rows_i on model i's own rows (0 once it is done)
        d = softmax(logits).sub_(target).mul_(share[t])
        backward(d.to(dtype) if low else d, hidden, saved, weights_now, uses, activation, grad_slots)
        if low:
            rule.grad.copy_(grad)
        rule.update(step_lr, t + 1)
        if frozen:  # a frozen trunk: its first layer goes back to where it started
            weights[0][frozen], biases[0][frozen] = trunk
        if check:
            for i in torch.nonzero(active & ~torch.isfinite(loss)).flatten().tolist():
                why[i] = f"training loss became {loss[i].item()} at step {t + 1}/{steps[i]}"
                alive[i] = False
                stale = True
            if time.perf_counter() - start > time_limit_s:
                for i in torch.nonzero(alive & (t + 1 < last)).flatten().tolist():
                    why[i] = (f"ran past its time limit of {time_limit_s:g} s at step {t + 1}/{steps[i]} "
                              f"(trained in a population of {count})")
                    alive[i] = False
                    stale = True

    # the final train loss of every model at once, and its weights back to the CPU in one copy
    loss = final_loss(x, y, weights, biases, uses, activation).cpu()
    finite = torch.stack([torch.isfinite(t).flatten(1).all(1) for t in rule.params]).all(0).cpu()
    weights, biases = slot_views(flat.cpu(), sizes)
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
            out = act(product(hidden, weights[j][a:b], biases[j][a:b]))
            hidden = out if used is None else torch.where(used[a:b], out, hidden)
        logits = product(hidden, weights[-1][a:b], biases[-1][a:b])
        losses.append(F.cross_entropy(logits.flatten(0, 1), y.repeat(b - a), reduction="none").view(b - a, -1).mean(1))
    return torch.cat(losses)


# MKL's batched products run 2-4x slower with fewer than 16 result columns than the same product
# transposed (an output layer of 10 classes, a hidden layer of 8 units; measured in benchmarks/README.md)
NARROW = 16


def product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None,
            out: torch.Tensor | None = None) -> torch.Tensor:
    """Every model's a @ b (+ bias): (P, M, K) x (P, K, N) (+ (P, 1, N)) -> (P, M, N), written into `out`
    if given. On a CPU a narrow result (N < NARROW <= M) is computed transposed, (b^T a^T)^T, and
    returned as that transposed view: the same sums, in a layout MKL runs fast."""
    if a.device.type == "cpu" and b.shape[-1] < NARROW <= a.shape[-2]:
        a, b = b.transpose(1, 2), a.transpose(1, 2)
        result = (torch.bmm(a, b) if bias is None else torch.baddbmm(bias.transpose(1, 2), a, b)).transpose(1, 2)
        return result if out is None else out.copy_(result)
    if bias is None:
        return torch.bmm(a, b, out=out)
    return torch.baddbmm(bias, a, b, out=out)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, written out: over a few classes, torch's fused kernel (which
    vectorises along that dimension) takes 2-3 times as long as these four whole-tensor operations."""
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def backward(d: torch.Tensor, last_hidden: torch.Tensor, saved: list, weights: list[torch.Tensor],
             uses: list[torch.Tensor | None], activation: Activations,
             grads: tuple[list[torch.Tensor], list[torch.Tensor]]) -> None:
    """The gradient of every model's loss by hand, from d = d loss / d logits (P, B, classes), written
    into `grads`: per slot the weight and bias views of a flat tensor laid out as `stack_slots` lays
    out the parameters. Written out, a step is a few dozen whole-population operations; autograd's
    graph of the same step cost more than all of them."""
    grad_w, grad_b = grads
    product(last_hidden.transpose(1, 2), d, out=grad_w[-1])
    torch.sum(d, 1, keepdim=True, out=grad_b[-1])
    d_hidden = product(d, weights[-1].transpose(1, 2))
    for j in reversed(range(len(uses))):
        hidden, pre, act, scale = saved[j]
        used = uses[j]
        d_out = d_hidden if used is None else torch.where(used, d_hidden, 0.0)  # a skipped slot learns nothing
        if scale is not None:
            d_out = d_out * scale
        d_pre = activation.backward(d_out, pre, act)  # over d_out: this step's own (a product, where or *)
        product(hidden.transpose(1, 2), d_pre, out=grad_w[j])
        torch.sum(d_pre, 1, keepdim=True, out=grad_b[j])
        if j > 0:
            d_in = product(d_pre, weights[j].transpose(1, 2))
            d_hidden = d_in if used is None else torch.where(used, d_in, d_hidden)  # skipped: passed through


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
