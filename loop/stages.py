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
InputKind = Literal["features", "tokens", "tasks"]  # float feature vectors, integer token ids, or task draws
# ("tasks": each item is one inner task, (family, draw, inner seed); the inputs of improvers, loop/meta)


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
    in_features: int  # features per item (float inputs), or tokens per item (token inputs)
    n_classes: int
    compute_penalty: float = 0.0  # score = proxy - compute_penalty * log10(parameters)
    target: float | None = None  # a speedrun: below the target, score = proxy - 100; at or above, -log10(compute)
    inputs: InputKind = "features"  # x is float (N, in_features), or "tokens": long ids (N, seq_len)
    vocab: int = 0  # token inputs: ids lie in [0, vocab)
    seq_len: int = 0  # token inputs: ids per item (= in_features)
    image: tuple[int, ...] = ()  # float inputs that are a flattened image: (height, width)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", tuple(self.image))
        check_inputs(self.name, self.inputs, self.in_features, self.vocab, self.seq_len, self.image)

    def score(self, proxy: float, parameters: int, compute: float | None = None) -> float:
        """How metrics become the one scalar promotion compares. A speedrun (`target` set) ranks every
        successor that reaches the target above every one that does not, and among those that reach
        it, the one that trained with less compute higher (score -log10(compute): 0.005 is 1.2% less)."""
        if self.target is not None:
            if compute is None:
                raise ValueError(f"objective {self.name}: a speedrun needs each successor's training compute")
            return -math.log10(max(compute, 1)) if proxy >= self.target else proxy - 100
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
    # The incumbent's genome and weights (numpy arrays, plain data that travels to workers), given
    # only where the genome inherits them or distils from the incumbent (DESIGN, "who sees what").
    parent_genome: Genome | None = None
    parent_weights: "Mapping[str, np.ndarray] | None" = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Successor:
    """A trained candidate. Its id is a hash of its genome and weights."""

    id: str
    candidate: Candidate
    model: "nn.Module"
    train: Mapping[str, float]  # train_loss, steps, seconds, parameters
    inherited: str = "scratch"  # where its starting weights came from: scratch, copied, grown, grown-approx

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
class Note:
    """An event a gate asks the engine to write before its decision (a mined test added or retired,
    a test bank's results), for the ledger and the report only: no stage reads it back."""

    event: str  # one of the ledger's gate events: test_added, test_retired, tests_run
    reasons: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The control gate's answer on a nominee."""

    action: Literal["promote", "veto", "pause"]
    probes: Mapping[str, float]  # "probe/<name>" -> value (nominee), plus incumbent values
    reasons: tuple[str, ...]
    # For a pause that holds a nominee the checks passed (a person's approval, a tripwire about the
    # nominee): the reasons its promotion carries if a person approves it. None: approving the
    # pause lifts it and promotes nothing (an integrity failure, vetoes in a row).
    if_approved: tuple[str, ...] | None = None
    notes: tuple[Note, ...] = ()  # events for the ledger only, written before the decision


def human_verdict(approve: bool, by: str, why: str) -> str:
    """The reason a person's answer adds to a promotion or veto, however it arrived (a terminal, an
    approval file, `rsi-loop-approve`); the report reads it back (`loop.tools.runs.human_decisions`)."""
    return f"human: {'approved' if approve else 'vetoed'} by {by}: {why}"


@dataclass(frozen=True)
class Past:
    """One past generation as the generator may see it: no data, no truth."""

    generation: int
    proposed: tuple[Genome, ...]
    proxy: tuple[float | None, ...]  # per proposed genome; None when quarantined
    decision: str  # promoted, vetoed, paused, none
    reasons: tuple[str, ...]
    gate: Mapping[str, float] = field(default_factory=dict)  # what the gate measured (probe values, tripwires)
    nominee: int | None = None  # which of `proposed` the decision was about (None: no nominee)


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
    """What execution needs to know of the task, without its held-out data: enough to build a
    model for its inputs (`successors.build(genome, shape)`) and train it."""

    in_features: int
    n_classes: int
    max_steps: int
    device: str
    inputs: InputKind = "features"  # as `Task.inputs`
    vocab: int = 0
    seq_len: int = 0
    image: tuple[int, ...] = ()
    objective: str = ""  # the task's name, for error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", tuple(self.image))
        check_inputs(self.objective or "task", self.inputs, self.in_features, self.vocab, self.seq_len, self.image)

    @classmethod
    def of(cls, task: Task, device: str, max_steps: int | None = None, family: str | None = None,
           gate: object = None) -> "TaskShape":
        """The shape of `task` (at most `max_steps` steps a candidate, default its budget's). With
        `family` and `gate`, both are asked whether they can take these inputs (`successors.check_task`,
        the gate's `check_task(shape)` where it has one), so a pairing that cannot work (a
        transformer on image features, an image probe on tokens) fails before the run starts, as a
        `ConfigError`."""
        from loop.config import ConfigError

        shape = cls(task.in_features, task.n_classes, task.budget.steps if max_steps is None else max_steps,
                    device, task.inputs, task.vocab, task.seq_len, task.image, task.name)
        try:
            if family is not None:
                from successors import check_task

                check_task(family, shape)
            if hasattr(gate, "check_task"):
                gate.check_task(shape)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return shape

    def describe(self) -> str:
        """How a person names these inputs: "64 float features (an 8x8 image)", "2 tokens of 31"."""
        if self.inputs == "tasks":
            return "task draws (family, draw, inner seed): the inputs of improvers"
        if self.inputs == "tokens":
            return f"sequences of {self.seq_len} tokens from a vocabulary of {self.vocab}"
        image = f" (a {'x'.join(map(str, self.image))} image)" if self.image else ""
        return f"{self.in_features} float features{image}"


INPUT_KINDS = ("features", "tokens", "tasks")


def check_inputs(name: str, inputs: str, in_features: int, vocab: int, seq_len: int,
                 image: Sequence[int]) -> None:
    """An objective's input description must be whole: tokens need a vocabulary and a length equal
    to `in_features`; an image's pixels must number `in_features`."""
    if inputs not in INPUT_KINDS:
        raise ValueError(f"{name}: inputs={inputs!r} is not one of {list(INPUT_KINDS)}")
    if inputs == "tokens" and (vocab < 2 or seq_len < 1 or seq_len != in_features):
        raise ValueError(f"{name}: token inputs need vocab >= 2 and seq_len = in_features >= 1, got "
                         f"vocab={vocab}, seq_len={seq_len}, in_features={in_features}")
    if image and (inputs != "features" or math.prod(image) != in_features):
        raise ValueError(f"{name}: image={tuple(image)} must describe float features whose pixels number "
                         f"in_features={in_features}")
