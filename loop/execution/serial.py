"""Execution: train candidates within the budget. Sees the train split only.

`execution=serial` trains one candidate at a time on CPU or one GPU
(`device=auto`). A candidate whose training raises, produces NaN/inf or runs past its time limit
is quarantined with the reason; the loop goes on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from loop.checkpoints import successor_id, weights_of
from loop.execution.inherit import distill_weight, inherit_into, linears, teacher_probs
from loop.execution.prior import set_trunk
from loop.stages import Candidate, DataView, Quarantined, Split, Successor, TaskShape
from successors import build

OPTIMIZERS = ("sgd", "adam", "adamw")
DTYPES = ("float32", "bfloat16")  # execution.dtype: bfloat16 is mixed precision (float32 weights and optimizer)


class Quarantine(Exception):
    """Training of one candidate failed in a way the loop records and survives."""


def check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"recipe optimizer {name!r} is not one of {OPTIMIZERS}")


def make_optimizer(recipe: Mapping[str, object], params) -> torch.optim.Optimizer:
    name, lr, wd = str(recipe["optimizer"]), float(recipe["lr"]), float(recipe["weight_decay"])
    check_optimizer(name)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def batch_rows(candidate: Candidate, rows: int) -> int:
    """Rows per optimizer step: the recipe's batch size, at most the train split."""
    return min(int(candidate.genome.recipe["batch_size"]), rows)


def batch_plan(candidate: Candidate, rows: int, max_steps: int) -> torch.Tensor:
    """The train rows each step reads, (steps, batch), drawn once from the candidate's seed. Every
    execution uses it, so serial, batched and pooled training see the same batches."""
    steps, batch = min(int(candidate.genome.recipe["steps"]), max_steps), batch_rows(candidate, rows)
    return torch.randint(rows, (steps, batch), generator=torch.Generator().manual_seed(candidate.seed))


def seed_torch(seed: int) -> None:
    """`torch.manual_seed` for the devices this project uses. torch's own also queues a seed for
    every accelerator type not started yet, formatting the caller's stack for each (about 1 ms a
    call here, once per candidate); CPU-only, only the CPU generator needs it."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def initial_model(candidate: Candidate, shape: TaskShape) -> torch.nn.Module:
    """The untrained model, initialised from the candidate's seed (which also seeds dropout)."""
    seed_torch(candidate.seed)
    return build(candidate.genome, shape)


def start_model(candidate: Candidate, shape: TaskShape) -> tuple[torch.nn.Module, str]:
    """The model training starts from: initialised from the candidate's seed, then filled with
    its parent's weights where the genome inherits them (`loop.execution.inherit`); and what happened."""
    model = initial_model(candidate, shape)
    return model, inherit_into(model, candidate, shape)


def distillation_loss(logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None,
                      weight: torch.Tensor | float) -> torch.Tensor:
    """Per-row loss (any leading shape): cross-entropy with the gold labels, mixed with cross-entropy against the
    teacher's distribution `soft` by `weight` (0: gold only; 1: the teacher only)."""
    hard = F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)
    if soft is None:
        return hard
    return (1 - weight) * hard - weight * (soft * F.log_softmax(logits, dim=-1)).sum(-1)


def multiply_adds(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one forward pass on one example, counted from the layers that ran: a Linear
    layer's weights once per position it is applied at, a convolution's once per output position.
    Exact for the MLP and CNN families; for the transformer an undercount (attention's own products
    and its fused projections are not seen), so speedruns compare MLPs and CNNs."""
    counted = []

    def linear(m, inputs, output):
        counted.append(m.weight.numel() * (output.numel() // output.shape[-1]))

    def conv(m, inputs, output):
        counted.append(m.weight.numel() * output[0, 0].numel())

    hooks = [m.register_forward_hook(linear if isinstance(m, torch.nn.Linear) else conv)
             for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return int(sum(counted))


def training_compute(per_example: int, steps: int, batch: int) -> int:
    """Deterministic training compute: optimizer steps x rows per batch x 3 x the forward multiply-adds
    of one example (`multiply_adds`; the backward pass costs about twice the forward). Wall time never enters it."""
    return 3 * steps * batch * per_example


def finish(candidate: Candidate, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
           steps: int, inherited: str) -> Successor:
    """Check a trained model and make it a Successor: its final train loss, id, size and training compute."""
    model.eval()
    with torch.no_grad():
        train_loss = F.cross_entropy(model(x), y).item()
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return successor(candidate, model.cpu(), train_loss, finite, steps, inherited, x[:1].cpu(), len(x))


def successor(candidate: Candidate, model: torch.nn.Module, train_loss: float, finite: bool, steps: int,
              inherited: str, example: torch.Tensor, rows: int, per_example: int | None = None) -> Successor:
    """A trained model on the CPU as a Successor (its id, size and training compute), given its final
    loss on the `rows` train rows and whether its weights are finite; `Quarantine` if either is not.
    `per_example`: the model's forward multiply-adds on one example, where the caller knows them
    (otherwise counted on `example`)."""
    if not math.isfinite(train_loss) or not finite:
        raise Quarantine(f"weights or loss are not finite after {steps} steps (loss {train_loss})")
    model.eval()
    sid = successor_id(candidate.genome.to_dict(), weights_of(model))
    parameters = sum(p.numel() for p in model.parameters())
    # Deterministic facts only: these go into the ledger, which must repeat run for run.
    per_example = multiply_adds(model, example) if per_example is None else per_example
    compute = training_compute(per_example, steps, batch_rows(candidate, rows))
    return Successor(sid, candidate, model, {"train_loss": train_loss, "steps": steps, "parameters": parameters,
                                             "compute": compute}, inherited)


def train_candidate(candidate: Candidate, split: Split, shape: TaskShape, time_limit_s: float,
                    check_every: int = 25, dtype: str = "float32") -> Successor:
    """Train one candidate from scratch with its recipe; raise `Quarantine` on NaN/inf or timeout.
    `dtype` bfloat16: the forward and backward passes under `torch.autocast` (float32 weights)."""
    device = torch.device(shape.device)
    model, inherited = start_model(candidate, shape)
    frozen = set_trunk(model, candidate.genome, split.x, candidate.parent is not None)  # a label-free pretrained first layer, kept fixed
    start = time.perf_counter()  # the trunk is shared, cached work: not this candidate's time
    model = model.to(device)
    soft = teacher_probs(candidate, split, shape)
    soft = soft.to(device) if soft is not None else None
    weight = distill_weight(candidate.genome)
    plan = batch_plan(candidate, len(split), shape.max_steps).to(device)
    steps = len(plan)
    fixed = {id(p) for p in linears(model)[0].parameters()} if frozen else set()
    optimizer = make_optimizer(candidate.genome.recipe, [p for p in model.parameters() if id(p) not in fixed])
    x, y = split.x.to(device), split.y.to(device)
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    for step in range(1, steps + 1):
        index = plan[step - 1]
        with autocast:
            logits = model(x[index])
        if soft is None:
            loss = F.cross_entropy(logits.float(), y[index])
        else:
            loss = distillation_loss(logits.float(), y[index], soft[index], weight).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % check_every == 0 or step == steps:
            value = loss.item()
            if not math.isfinite(value):
                raise Quarantine(f"training loss became {value} at step {step}/{steps}")
            if time.perf_counter() - start > time_limit_s:
                raise Quarantine(f"ran past its time limit of {time_limit_s:g} s at step {step}/{steps}")
    return finish(candidate, model, x, y, steps, inherited)


def use_threads(threads: int | None) -> None:
    """Set torch's intra-op threads for this process (None: leave torch's default, all cores)."""
    if threads is not None:
        torch.set_num_threads(threads)


def check_threads(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"execution.threads must be null (torch's default: every core) or a whole number >= 1, "
                         f"got {value!r}")


def check_dtype(value: object) -> None:
    if value not in DTYPES:
        raise ValueError(f"execution.dtype must be one of {list(DTYPES)}, got {value!r}")


def check_time_limit(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"execution.time_limit_s must be a number > 0, got {value!r}")


def quarantine_reason(err: Exception) -> str:
    """Why a candidate is quarantined, in the same words whichever execution trained it."""
    return str(err) if isinstance(err, Quarantine) else f"training raised {type(err).__name__}: {err}"


def attempt(candidate: Candidate, split: Split, shape: TaskShape, time_limit_s: float,
            dtype: str = "float32") -> Successor | Quarantined:
    """Train one candidate; any failure quarantines it with the reason, and the loop goes on."""
    try:
        return train_candidate(candidate, split, shape, time_limit_s, dtype=dtype)
    except Exception as err:  # a broken candidate must not stop the loop
        return Quarantined(candidate, quarantine_reason(err))


@dataclass
class Serial:
    """Train candidates one at a time. Selected with `execution=serial`."""

    time_limit_s: float = 60.0  # per candidate; past it the candidate is quarantined
    threads: int | None = None  # torch threads; 1 when several runs share the machine (see docs/scale.md)
    dtype: str = "float32"  # float32, or bfloat16: mixed precision (torch.autocast; float32 weights)

    def __post_init__(self) -> None:
        check_time_limit(self.time_limit_s)
        check_threads(self.threads)
        check_dtype(self.dtype)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        use_threads(self.threads)
        split = data["train"]
        return [attempt(candidate, split, task, self.time_limit_s, self.dtype) for candidate in candidates]
