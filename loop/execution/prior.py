"""A useful prior without labels: an mlp's first layer (its trunk) taken from a denoising
autoencoder trained on the train split's inputs, and kept frozen.

Selected per successor by the recipe gene `trunk: autoencoder` (absent or `learned`: the first layer
trains as usual). It is a student's prior: generation 0, which has no parent (in weak-to-strong,
the first teacher), learns its first layer as usual. Weak-to-strong needs it: a student trained from scratch on its teacher's labels
learns the teacher's errors with them, while a student whose features were learned without any
labels has a reason to generalise past them (`experiment=weak_to_strong`).

The autoencoder sees only the train inputs, never a label of any split, and is trained once per
(train inputs, width, activation) in a process with its own seed, so it is the same for every
candidate and every run.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from loop.execution.inherit import linears
from loop.stages import Genome

TRUNKS = ("learned", "autoencoder")
STEPS, LR, NOISE, BATCH, SEED = 1500, 3e-3, 0.2, 64, 0

_cache: dict[tuple[str, int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def frozen_trunk(genome: Genome) -> bool:
    trunk = genome.recipe.get("trunk", "learned")
    if trunk not in TRUNKS:
        raise ValueError(f"recipe trunk {trunk!r} is not one of {TRUNKS}")
    if trunk == "autoencoder" and genome.family != "mlp":
        raise ValueError(f"recipe trunk=autoencoder needs family mlp, got {genome.family!r}")
    return trunk == "autoencoder"


def autoencoder_trunk(x: torch.Tensor, width: int, activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (width, features) and bias of a denoising autoencoder's encoder on inputs `x`."""
    from successors.mlp import ACTIVATIONS

    x = x.detach().float().cpu().flatten(1)
    key = (hashlib.sha256(x.numpy().tobytes()).hexdigest(), width, activation)
    if key not in _cache:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():  # the loop's own random streams stay untouched
            torch.manual_seed(SEED)
            encoder, decoder = nn.Linear(x.shape[1], width), nn.Linear(width, x.shape[1])
            act = ACTIVATIONS[activation]()
            optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LR)
            for _ in range(STEPS):
                batch = x[torch.randint(len(x), (BATCH,))]
                loss = F.mse_loss(decoder(act(encoder(batch + NOISE * torch.randn_like(batch)))), batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        _cache[key] = (encoder.weight.detach().clone(), encoder.bias.detach().clone())
    weight, bias = _cache[key]
    return weight.clone(), bias.clone()


def set_trunk(model: nn.Module, genome: Genome, x: torch.Tensor, student: bool = True) -> bool:
    """Put the autoencoder's encoder into `model`'s first layer if the genome asks for it and the
    model is a student (it has a parent; generation 0, the first teacher, learns its own); return
    whether that layer is to stay frozen."""
    if not frozen_trunk(genome) or not student:
        return False
    if not x.is_floating_point():
        raise ValueError("recipe trunk=autoencoder needs float feature inputs (e.g. objective=digits), not tokens")
    first = linears(model)[0]
    weight, bias = autoencoder_trunk(x, first.out_features, str(genome.arch["activation"]))
    with torch.no_grad():
        first.weight.copy_(weight)
        first.bias.copy_(bias)
    return True
