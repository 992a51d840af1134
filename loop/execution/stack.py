"""The stacked population's parameters: their layout (every model's weights in one flat tensor, slot
by slot) and the optimizer step on them (`Rule`). Used by `execution=batched` (batched.py)."""

from __future__ import annotations

import torch

MOMENTUM, BETAS, EPS = 0.9, (0.9, 0.999), 1e-8  # torch.optim's defaults, as `serial` uses them
VECTOR = 64  # elements: a multiple of every CPU vector width (AVX-512: 16 floats) and cache line


def column(values: list[float], device: torch.device) -> torch.Tensor:
    """Per-model scalars shaped (P, 1, 1) to broadcast over stacked weights."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def mask(flags: list[bool], device: torch.device) -> torch.Tensor | None:
    """Per-model booleans shaped (P, 1, 1); None when all are true (nothing to select)."""
    return None if all(flags) else torch.tensor(flags, device=device).view(-1, 1, 1)


def stack_slots(layers_of: list[list[torch.nn.Linear]], device: torch.device):
    """All P models' parameters as one contiguous 1-D tensor, laid out slot by slot: each slot's stacked,
    zero-padded weights (P, in, out), then its biases (P, 1, out), each a contiguous view of it (a batched
    product writes a gradient straight into a contiguous view; into a strided one it writes a copy
    first). Slots are hidden layers 0..D-1 of the deepest model, then the output layer. Also, per hidden
    slot, which models use it (None: all). One flat tensor makes most of the optimizer step a few
    whole-population operations. It is filled on the CPU, where the models are, and moved to `device`
    in one copy."""
    depth = max(len(layers) for layers in layers_of) - 1
    width = max(layer.out_features for layers in layers_of for layer in layers[:-1])
    inputs, classes = layers_of[0][0].in_features, layers_of[0][-1].out_features
    sizes = [(inputs, width)] + [(width, width)] * (depth - 1) + [(width, classes)]
    flat = torch.zeros(len(layers_of) * sum((n_in + 1) * n_out for n_in, n_out in sizes))
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
    contiguous views of the flat parameters (or of any tensor laid out as they are)."""
    count = flat.numel() // sum((n_in + 1) * n_out for n_in, n_out in sizes)
    weights, biases, at = [], [], 0
    for n_in, n_out in sizes:
        weights.append(flat[at:at + count * n_in * n_out].view(count, n_in, n_out))
        at += count * n_in * n_out
        biases.append(flat[at:at + count * n_out].view(count, 1, n_out))
        at += count * n_out
    return weights, biases


def tensors(views: tuple[list[torch.Tensor], list[torch.Tensor]]) -> list[torch.Tensor]:
    """Every slot's weights and biases, in one list."""
    return [t for pair in zip(*views) for t in pair]


def slot_of(layers: list[torch.nn.Linear], j: int) -> int:
    """The population slot of a model's j-th Linear layer: its hidden layers fill the first slots,
    its output layer always takes the last (see `stack_slots`)."""
    return -1 if j == len(layers) - 1 else j


class Rule:
    """Each model's optimizer step on the population's flat parameters, following torch.optim's SGD
    (momentum 0.9, L2 decay), Adam (L2 decay) and AdamW (decoupled decay), with a per-model learning
    rate and weight decay. It holds the optimizer's state, laid out as the parameters are.

    The moments of the whole population are updated in one pass by torch's fused Adam kernel, which
    writes each model's direction m_hat / (sqrt(v_hat) + eps) (about ten whole-tensor operations
    before); each model then moves by its own learning rate along it, slot by slot. An SGD member's
    momentum buffer is Adam's first moment over 1 - 0.9: both sum 0.9^k g over past steps, Adam's
    scaled by 0.1. A population of SGD alone keeps torch.optim's buffer itself and no second moment."""

    def __init__(self, optimizers: list[str], decay: list[float], flat: torch.Tensor, sizes: list[tuple[int, int]]):
        device = flat.device
        sgd = [name == "sgd" for name in optimizers]
        decoupled = [name == "adamw" for name in optimizers]
        self.adam = not all(sgd)  # any Adam or AdamW member: keep a second moment
        self.sgd = column([float(s) for s in sgd], device) if self.adam and any(sgd) else None  # None: none to single out
        self.l2 = column([0.0 if d else w for d, w in zip(decoupled, decay)], device)
        self.any_l2 = bool(self.l2.any())
        self.decoupled = column([w if d else 0.0 for d, w in zip(decoupled, decay)], device) if any(decoupled) else None
        # The fused kernel's vector loop leaves a tensor's last few elements to a scalar loop, which
        # rounds differently: padded to whole vectors, every element takes the same path, so a model
        # trains the same wherever it sits in the population (the padding is 0 and stays 0).
        padded = lambda: torch.zeros(-(-flat.numel() // VECTOR) * VECTOR, device=device)  # noqa: E731
        self.whole = [padded() for _ in range(4 if self.adam else 2)]  # gradients, m, then v, direction
        self.grad, self.m = (t[:flat.numel()] for t in self.whole[:2])  # this step's gradients (`backward`)
        self.counter = torch.zeros((), device=device)  # the fused kernel's step count
        # each as slot by slot views (P, ...), to move each model by its own learning rate
        self.params, self.grads, self.moments = (tensors(slot_views(t, sizes)) for t in (flat, self.grad, self.m))
        self.directions = tensors(slot_views(self.whole[3][:flat.numel()], sizes)) if self.adam else []

    def update(self, lr: torch.Tensor, step: int) -> None:
        """One step in place, from this step's gradients in `grad` (overwritten with the L2 term) and
        each model's learning rate lr (P, 1, 1)."""
        for p, grad in zip(self.params, self.grads):
            if self.decoupled is not None:
                p.mul_(1 - lr * self.decoupled)
            if self.any_l2:
                grad.addcmul_(self.l2, p)
        if not self.adam:  # SGD alone, as torch.optim.SGD: m = 0.9 m + g, p = p - lr m
            self.m.mul_(MOMENTUM).add_(self.grad)
            for p, m in zip(self.params, self.moments):
                p.addcmul_(lr, m, value=-1)
            return
        grads, firsts, seconds, directions = ([t] for t in self.whole)  # the kernel's lists, one tensor each
        directions[0].zero_()
        self.counter.fill_(step)
        torch._fused_adam_(directions, grads, firsts, seconds, [], [self.counter], lr=-1.0, beta1=BETAS[0],
                           beta2=BETAS[1], weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False)
        if self.sgd is None:
            for p, direction in zip(self.params, self.directions):
                p.addcmul_(lr, direction, value=-1)
            return
        adam_lr, sgd_lr = lr * (1 - self.sgd), lr * self.sgd / (1 - BETAS[0])  # SGD: lr m = lr m_adam / 0.1
        for p, direction, m in zip(self.params, self.directions, self.moments):
            p.addcmul_(adam_lr, direction, value=-1).addcmul_(sgd_lr, m, value=-1)
