"""The six stages of one generation, and the small frozen records that pass between them.

Each stage is a `typing.Protocol` with one method: any function-like object or class that fits
can be plugged in through Hydra's `_target_`, no base class to inherit from. Records are frozen
dataclasses; the only mappings they hold have a shape fixed by the successor's gene space.

Who sees what (DESIGN.md): the engine hands each stage a `DataView` holding only the splits that
stage may read, so a plugin that reaches for another split fails loudly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # torch is only imported where a command needs it
    import numpy as np
    import torch
    from torch import nn

GeneValue = int | float | str


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted((mapping or {}).items())))


@dataclass(frozen=True)
class Genome:
    """What a successor is: architecture + training recipe + the generator's own genes."""

    family: str  # which successor family builds it, e.g. "mlp"
    arch: Mapping[str, GeneValue]  # e.g. depth, width, activation, dropout
    recipe: Mapping[str, GeneValue]  # e.g. optimizer, lr, steps, batch_size, weight_decay
    generator: Mapping[str, GeneValue] = field(default_factory=dict)  # step sizes etc. (recursion)

    def __post_init__(self) -> None:
        for name in ("arch", "recipe", "generator"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "arch": dict(self.arch),
            "recipe": dict(self.recipe),
            "generator": dict(self.generator),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Genome":
        return cls(data["family"], data["arch"], data["recipe"], data.get("generator", {}))

    def canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def replace(self, **parts: Mapping[str, GeneValue]) -> "Genome":
        merged = {k: {**getattr(self, k), **v} for k, v in parts.items()}
        return Genome(self.family, merged.get("arch", self.arch), merged.get("recipe", self.recipe),
                      merged.get("generator", self.generator))


@dataclass(frozen=True)
class Budget:
    """How much the loop may spend. Checked on construction so a bad budget fails at start."""

    generations: int  # generations after generation 0 (the baseline)
    candidates: int  # candidates proposed per generation
    steps: int  # hard cap on optimizer steps per candidate; the recipe's `steps` gene is clipped to it

    def __post_init__(self) -> None:
        for name in ("generations", "candidates", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget.{name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class Split:
    """One labelled split: inputs and integer labels (torch tensors)."""

    x: "torch.Tensor"
    y: "torch.Tensor"

    def __len__(self) -> int:
        return int(self.y.shape[0])


class AccessError(PermissionError):
    """A stage asked for a data split it must not see (DESIGN.md, "who sees what")."""


class DataView:
    """The splits one stage may read. Asking for any other split raises `AccessError`."""

    def __init__(self, splits: Mapping[str, Split], allowed: Sequence[str], stage: str):
        self._splits = {name: splits[name] for name in allowed}
        self.stage = stage

    def __getitem__(self, name: str) -> Split:
        if name not in self._splits:
            raise AccessError(
                f"the {self.stage} stage may not see the {name!r} split; "
                f"it sees only: {', '.join(sorted(self._splits)) or 'no split'}"
            )
        return self._splits[name]

    def __contains__(self, name: str) -> bool:
        return name in self._splits

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._splits))


@dataclass(frozen=True)
class Task:
    """What the objective prepared: the data splits, the budget, the input/output shape, the score."""

    name: str
    splits: Mapping[str, Split]  # train, proxy, audit, probe, truth
    budget: Budget
    in_features: int
    n_classes: int
    compute_penalty: float = 0.0  # score = proxy - compute_penalty * log10(parameters)

    def score(self, proxy: float, parameters: int) -> float:
        """How metrics become the one scalar promotion compares."""
        return proxy - self.compute_penalty * math.log10(max(parameters, 1))

    def view(self, stage: str, *allowed: str) -> DataView:
        return DataView(self.splits, allowed, stage)


@dataclass(frozen=True)
class Candidate:
    """A proposed genome, not yet trained. `key` is "<generation>.<index>"."""

    key: str
    genome: Genome
    parent: str | None  # id of the incumbent it was derived from
    seed: int  # drives initialisation, batch order and dropout


@dataclass(frozen=True)
class Successor:
    """A trained candidate. Its id is a hash of its genome and weights."""

    id: str
    candidate: Candidate
    model: "nn.Module"
    train: Mapping[str, float]  # train_loss, steps, seconds, parameters

    @property
    def genome(self) -> Genome:
        return self.candidate.genome

    @property
    def parameters(self) -> int:
        return int(self.train["parameters"])


@dataclass(frozen=True)
class Quarantined:
    """A candidate whose training raised, diverged or ran out of time; the loop goes on."""

    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class Scores:
    """What the evaluator said of a model: `proxy` is what the loop optimises."""

    proxy: float
    metrics: Mapping[str, float] = field(default_factory=dict)  # extra evaluator metrics


@dataclass(frozen=True)
class Scored:
    """A successor with its proxy scores and the objective's scalar."""

    successor: Successor
    scores: Scores
    score: float

    @property
    def id(self) -> str:
        return self.successor.id


@dataclass(frozen=True)
class Nomination:
    """Promotion's answer: a nominee (or none) and why."""

    nominee: Scored | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Readout:
    """One metric a safety probe read off one model, with the per-item data the gate needs to
    compare two models item by item (paired statistics).

    - `kind="accuracy"`: `items` is a 0/1 vector (right/wrong per item); the gate uses an exact
      McNemar-style test on the discordant pairs.
    - `kind="statistic"`: `items` is an (n, k) array and `statistic(items) -> float` recomputes the
      metric from any resample of its rows; the gate uses a paired bootstrap (the same rows for both
      models).
    """

    metric: str  # "<probe>/<metric>", e.g. "calibration/ece"
    value: float  # the metric on all items
    kind: Literal["accuracy", "statistic"]
    items: "np.ndarray"
    higher_is_better: bool
    tolerance: float  # a regression beyond this (in the metric's units) is what the gate tests for
    label: str  # how a person names it: "ECE (15 equal-width bins)"
    statistic: "Callable[[np.ndarray], float] | None" = None


@dataclass(frozen=True)
class Decision:
    """The control gate's answer on a nominee."""

    action: Literal["promote", "veto", "pause"]
    probes: Mapping[str, float]  # "probe/<name>" -> value (nominee), plus incumbent values
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Past:
    """One past generation as the generator may see it: no data, no truth."""

    generation: int
    proposed: tuple[Genome, ...]
    proxy: tuple[float | None, ...]  # per proposed genome; None when quarantined
    decision: str  # promoted, vetoed, paused, none
    reasons: tuple[str, ...]
    gate: Mapping[str, float] = field(default_factory=dict)  # what the gate measured (probe values, tripwires)


# --- the six stages -------------------------------------------------------------------------


@runtime_checkable
class Objective(Protocol):
    """What is improved, on which data, under which budget, and how metrics become a score."""

    def prepare(self) -> Task: ...


@runtime_checkable
class Generator(Protocol):
    """Which genomes to try next. Sees genomes, proxy scores and decisions, never data."""

    def propose(self, parent: Genome, history: Sequence[Past], n: int,
                rng: "np.random.Generator") -> list[Genome]: ...


@runtime_checkable
class Execution(Protocol):
    """Train candidates within the budget. Sees the train split only."""

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: "TaskShape") -> list[Successor | Quarantined]: ...


@runtime_checkable
class Evaluator(Protocol):
    """How good is a model: the proxy the loop optimises. Sees its own evaluation split only."""

    def evaluate(self, model: "nn.Module", data: DataView) -> Scores: ...


@runtime_checkable
class Promotion(Protocol):
    """Which candidate, if any, is nominated to replace the incumbent."""

    def nominate(self, scored: Sequence[Scored], incumbent: Scored) -> Nomination: ...


@runtime_checkable
class Probe(Protocol):
    """A safety probe the control gate runs. `data` holds the gate's splits (probe, audit, proxy);
    `reference` is the frozen generation-0 baseline (e.g. the source of transferred attacks)."""

    name: str

    def measure(self, model: "nn.Module", data: DataView, reference: "nn.Module") -> list[Readout]: ...


@runtime_checkable
class Gate(Protocol):
    """May the nominee be promoted; should the loop pause. Never sees the truth split."""

    def review(self, nominee: Scored, incumbent: Scored, baseline: Scored, data: DataView,
               history: Sequence[Past]) -> Decision: ...


@dataclass(frozen=True)
class TaskShape:
    """What execution needs to know of the task, without its held-out data."""

    in_features: int
    n_classes: int
    max_steps: int
    device: str
