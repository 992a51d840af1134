"""A successor built from its predecessor: inherited weights and the incumbent as teacher.

Two recipe genes (absent = neither; `configs/successor/mlp.yaml` declares both):

- `inherit: parent` starts a child from the incumbent's weights instead of a fresh
  initialisation: a plain copy when every parameter has the same shape, or, for the mlp family,
  function-preserving growth when the child is wider and/or deeper (Net2Net, Chen et al. 2016):

  * wider: each new unit copies a random existing unit of its layer, and the next layer's weights
    from a unit and its copies are split between them with random positive shares that sum to
    one, so the function is unchanged while the copies' gradients differ (no symmetry to break);
  * deeper: identity layers are inserted before the output layer. This preserves the function
    exactly when the activation is ReLU (relu(h) = h for the non-negative h it receives); under
    tanh, GELU or SiLU the inserted layer only approximates identity, recorded as `grown-approx`.

  A child that is narrower or shallower than its parent, or of another family, starts from
  scratch, as does generation 0, which has no parent. What happened is recorded per successor (`Successor.inherited`, the `trained` event).
- `distill: d` in [0, 1] trains on (1 - d) x cross-entropy with the gold labels + d x
  cross-entropy with the incumbent's predicted distribution on the same rows. `d = 1` is the
  weak-to-strong setting: the incumbent labels the train split for its successor. Generation 0
  has no teacher and trains on the gold labels.

Execution receives the incumbent's weights only for genomes that use them, never any split but train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from loop.stages import Candidate, Genome, TaskShape
from successors import build

if TYPE_CHECKING:
    from loop.stages import Split

INHERIT_CHOICES = ("scratch", "parent")


def inherits(genome: Genome) -> bool:
    return genome.recipe.get("inherit", "scratch") == "parent"


def distill_weight(genome: Genome) -> float:
    return float(genome.recipe.get("distill", 0.0))


def uses_parent(genome: Genome) -> bool:
    """Whether execution needs the incumbent's weights for this genome."""
    return inherits(genome) or distill_weight(genome) > 0


def parent_model(candidate: Candidate, shape: TaskShape) -> nn.Module:
    """The incumbent, rebuilt from the genome and weights its child candidate carries (every
    parameter and buffer is loaded, so how the fresh model was initialised does not matter)."""
    if candidate.parent_genome is None or candidate.parent_weights is None:
        raise ValueError(f"candidate {candidate.key} inherits or distils, but carries no parent weights")
    with torch.random.fork_rng(devices=[]):  # leave the global RNG (serial dropout) as it was
        model = build(candidate.parent_genome, shape)
    model.load_state_dict({k: torch.as_tensor(v).clone() for k, v in candidate.parent_weights.items()})
    return model.eval()


def teacher_probs(candidate: Candidate, split: "Split", shape: TaskShape) -> torch.Tensor | None:
    """The incumbent's predicted class distribution on every train row, or None (no distillation)."""
    if distill_weight(candidate.genome) <= 0 or candidate.parent is None:
        return None
    teacher = parent_model(candidate, shape)
    with torch.no_grad():
        return torch.softmax(teacher(split.x).float(), dim=1)


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def inherit_into(child: nn.Module, candidate: Candidate, shape: TaskShape) -> str:
    """Fill `child` (already initialised from the candidate's seed) with its parent's weights where
    its genome asks for it; return what happened: scratch, copied, grown or grown-approx."""
    if not inherits(candidate.genome) or candidate.parent is None:
        return "scratch"
    parent = parent_model(candidate, shape)
    ours, theirs = child.state_dict(), parent.state_dict()
    if ours.keys() == theirs.keys() and all(ours[k].shape == theirs[k].shape for k in ours):
        child.load_state_dict(theirs)
        return "copied"
    if candidate.genome.family == candidate.parent_genome.family == "mlp":
        generator = torch.Generator().manual_seed(candidate.seed)
        exact = grow(linears(parent), linears(child), generator)
        if exact is not None:
            activation = candidate.genome.arch.get("activation")
            same = activation == candidate.parent_genome.arch.get("activation")
            return "grown" if same and (exact or activation == "relu") else "grown-approx"
    return "scratch"


@torch.no_grad()
def grow(parent: list[nn.Linear], child: list[nn.Linear], generator: torch.Generator) -> bool | None:
    """Net2Net growth of a chain of Linear layers (hidden layers of one width, then the output
    layer) into a wider and/or deeper chain, in place. Returns None (child left untouched) when
    the child cannot be grown from the parent (narrower, shallower, other input or output size);
    otherwise whether it inserted no layers (then exact whatever the activation)."""
    p_depth, c_depth = len(parent) - 1, len(child) - 1
    if p_depth < 1 or c_depth < p_depth:
        return None
    p_width, c_width = parent[0].out_features, child[0].out_features
    if c_width < p_width or parent[0].in_features != child[0].in_features or \
            parent[-1].out_features != child[-1].out_features:
        return None

    previous: tuple[torch.Tensor, torch.Tensor] | None = None  # the last layer's (mapping, shares)
    for src, dst in zip(parent[:-1], child[:p_depth]):
        mapping = torch.cat([torch.arange(p_width),
                             torch.randint(p_width, (c_width - p_width,), generator=generator)])
        weight = src.weight[mapping]
        if previous is not None:
            weight = weight[:, previous[0]] * previous[1]
        dst.weight.copy_(weight)
        dst.bias.copy_(src.bias[mapping])
        previous = (mapping, shares(mapping, p_width, generator))
    for dst in child[p_depth:-1]:  # inserted layers: identity
        dst.weight.copy_(torch.eye(c_width))
        dst.bias.zero_()
    child[-1].weight.copy_(parent[-1].weight[:, previous[0]] * previous[1])
    child[-1].bias.copy_(parent[-1].bias)
    return c_depth == p_depth


def shares(mapping: torch.Tensor, width: int, generator: torch.Generator) -> torch.Tensor:
    """Random positive shares per new unit such that the shares of each original unit's copies sum
    to one: the next layer's weights are split among the copies without changing the function."""
    raw = 0.5 + torch.rand(len(mapping), generator=generator)  # in [0.5, 1.5): no copy near zero
    total = torch.zeros(width).index_add_(0, mapping, raw)
    return raw / total[mapping]
