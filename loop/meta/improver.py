"""An improver, frozen into the config of an inner loop on a task it never saw.

A *snapshot* is the improver one successor carries: the generator genes of its genome (rate and step
size, operator preferences, ...), under the generator plugin and settings of the run it came from.
Freezing it is a change of the successor space: each generator gene's bounds shrink to the
snapshot's value, so no generator, whatever it does, can move them (every generator keeps genes
inside the space's bounds). The architecture and recipe start again from the run's generation-0
genome: what is measured is the machinery, not the model it happened to build.

A `Protocol` says how a snapshot is measured: which families its tasks come from (held out from
every selection), how many paired seeds, and the inner budget (k generations of so many candidates
of at most so many steps). Seed i always means the same task draw and the same inner seed, for every
snapshot compared: the comparisons are paired.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

from loop.config import CONFIG_DIR
from loop.ledger import canonical
from loop.objective.families import check_families
from loop.generator.mutation import WEIGHTED_OPERATORS
from loop.stages import Genome, GeneValue

HALVING = "loop.execution.halving.Halving"
GATES = {"off": "loop.gate.gates.Off", "run": None}  # "run": the source run's own gate


def check_gate(gate: object) -> None:
    """The inner loops' gate must be one `inner_config` knows."""
    if gate not in GATES:
        raise ValueError(f"gate must be one of {list(GATES)}, got {gate!r}")


@dataclass(frozen=True)
class Snapshot:
    """The improver one successor carries. `generation` is when it was promoted (0: the run's own start)."""

    name: str  # how a person names it in tables: "generation 0", "generation 3 (1a2b3c4d)"
    genes: Mapping[str, GeneValue]
    generation: int = 0
    successor: str | None = None
    promoted: tuple[int, ...] = ()  # every generation that promoted a successor carrying these genes

    @property
    def key(self) -> str:
        """Its genes as a file-name-safe hash (two snapshots with equal genes are the same improver)."""
        return hashlib.sha256(canonical(dict(self.genes)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Protocol:
    """How an improver is measured: held-out families, paired seeds and the inner loop's budget."""

    families: tuple[str, ...]  # where the tasks come from; seed i uses families[i % len(families)]
    seeds: int = 10  # paired seeds: task draws and inner seeds shared by every improver compared
    generations: int = 4  # k of imp@k: inner generations after generation 0
    candidates: int = 4
    steps: int = 200
    gate: str = "off"  # the inner loops' gate: off, or run (the source run's own)
    seed: int = 0  # the protocol's own seed: which draws and inner seeds seed i stands for
    workers: int = 1  # 1: inner loops in this process; N: on N worker processes (loop.meta.utility.run_inners)
    extra: Mapping[str, Any] = field(default_factory=dict)  # recorded with it (e.g. what it was for)

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(check_families(list(self.families), "families")))
        for name, low in (("seeds", 2), ("generations", 1), ("candidates", 1), ("steps", 1), ("seed", 0),
                          ("workers", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
        check_gate(self.gate)

    def task(self, i: int, control: bool = False) -> tuple[str, int, int]:
        """Seed i as (family, draw, inner seed). The negative control keeps the task draw and takes
        another inner seed, so it differs from seed i in nothing but the luck of the run."""
        from loop.engine import derive_seed

        family = self.families[i % len(self.families)]
        return family, i // len(self.families), derive_seed(self.seed, i, "control" if control else "inner")

    def record(self) -> dict[str, Any]:
        """What is held out and how it is measured, as recorded (and hashed) with every result."""
        return {"families": list(self.families), "seeds": self.seeds, "generations": self.generations,
                "candidates": self.candidates, "steps": self.steps, "gate": self.gate, "seed": self.seed,
                "workers": self.workers, **dict(self.extra)}

    def sha256(self) -> str:
        return hashlib.sha256(canonical(self.record()).encode()).hexdigest()


def frozen_space(space: Mapping[str, Any], genes: Mapping[str, GeneValue]) -> dict[str, Any]:
    """Each generator gene's bounds shrunk to `genes`' value: nothing can move it."""
    unknown = sorted(set(genes) ^ set(space))
    if unknown:
        raise ValueError(f"the snapshot's generator genes {sorted(genes)} differ from the successor space's "
                         f"{sorted(space)}")
    out = {}
    for name, spec in space.items():
        value = genes[name]
        if spec.get("type") == "choice":
            out[name] = {"type": "choice", "choices": [value]}
        else:
            out[name] = {"type": spec["type"], "low": value, "high": value, "log": bool(spec.get("log", False))}
    return out


def inner_config(source: DictConfig, genes: Mapping[str, GeneValue], task: tuple[str, int, int],
                 budget: Mapping[str, int], gate: str = "off", margin: float | None = None,
                 inherit: str = "free", distill: GeneValue = "free", halving: bool = False) -> DictConfig:
    """The config of one inner loop: the source config (its successor family, generator plugin,
    execution, evaluator, promotion) on one task draw `(family, draw, inner seed)`, under `budget`,
    with the generator genes `genes` frozen in (operator weights `weight_<op>` added to the inner
    space where it lacks them), the promotion margin where an improver sets it, and the inner
    successors' weight inheritance and distillation weight frozen to `inherit` and `distill` unless
    they are `free`, and with `halving`, the source's execution wrapped in successive halving."""
    family, draw, seed = task
    cfg = copy.deepcopy(source)
    with open_dict(cfg):
        objective = OmegaConf.load(f"{CONFIG_DIR}/objective/family.yaml")
        objective.family, objective.draw = family, draw
        objective.budget = dict(budget)
        cfg.objective = objective
        if GATES[gate] is not None:
            cfg.gate = {"_target_": GATES[gate]}
        cfg.tracker = {"_target_": "loop.tracker.trackers.NoTracker"}
        cfg.audit = None  # meta-utility reads truth alone; a held-out audit would only cost time
        cfg.seed, cfg.resume, cfg.weak_to_strong = seed, None, False
        cfg.ledger = {"anchor": None}
        space = OmegaConf.to_container(cfg.successor.space, resolve=True)
        own = dict(space.get("generator") or {})
        own |= {name: {"type": "float", "low": 0.0, "high": 1.0} for name in genes
                if name.startswith("weight_") and name not in own}  # an improver's operator weights
        cfg.successor.space.generator = frozen_space(own, genes)
        cfg.successor.init.generator = dict(genes)
        if inherit != "free":
            if "inherit" not in space.get("recipe", {}):
                raise ValueError(f"the improver sets inner inheritance to {inherit!r}, but the inner successor "
                                 f"space ({cfg.successor.family}) has no recipe.inherit gene")
            cfg.successor.space.recipe.inherit = {"type": "choice", "choices": [inherit]}
            cfg.successor.init.recipe.inherit = inherit
        if distill != "free":
            if "distill" not in space.get("recipe", {}):
                raise ValueError(f"the improver sets the inner distillation weight to {distill!r}, but the inner "
                                 f"successor space ({cfg.successor.family}) has no recipe.distill gene")
            cfg.successor.space.recipe.distill = {"type": "float", "low": float(distill), "high": float(distill)}
            cfg.successor.init.recipe.distill = float(distill)
        if margin is not None:
            cfg.promotion.margin = float(margin)
        if halving and cfg.execution.get("_target_") != HALVING:
            cfg.execution = {"_target_": HALVING, "inner": OmegaConf.to_container(cfg.execution, resolve=True)}
        cfg.pop("hydra", None)
        cfg.pop("truth", None)
    return cfg


def snapshot_config(source: DictConfig, snapshot: Snapshot, protocol: Protocol, i: int,
                    control: bool = False) -> DictConfig:
    """Seed i of `protocol` with `snapshot` frozen in (`control`: the negative control's inner seed)."""
    return inner_config(source, snapshot.genes, protocol.task(i, control),
                        {"generations": protocol.generations, "candidates": protocol.candidates,
                         "steps": protocol.steps}, protocol.gate)


# --- an improver as a genome (successor=improver) --------------------------------------------

WEIGHTED_GENERATORS = ("loop.generator.mutation.SelfAdaptive",)  # read weight_<op> genes (self_adaptive, fixed)

# The genes an improver's genome may carry, and what each sets in its inner loops. Its generator
# part is the inner successors' generator genes (frozen in them): with generator=self_adaptive one
# level up they are also the step sizes it proposes the next improvers with, I(t+1) = I(t)(I(t)).
IMPROVER_GENES = {
    "recipe": {
        "candidates": "inner candidates per generation; steps per candidate = compute // candidates",
        "margin": "the inner promotion margin (greedy): how much a nominee must beat the incumbent by",
        # (named inner_*: an improver's own `inherit` and `distill` would be read as its own inheritance)
        "inner_inherit": "the inner successors' weight inheritance: free (the inner loop evolves it), scratch or parent",
        "inner_distill": "the inner successors' weight on the incumbent-as-teacher loss: free, or a number in [0, 1]",
        "inner_halving": "successive halving of each inner generation's candidates (execution=halving around the "
                         "inner execution, at the same steps): true or false",
        **{f"weight_{op}": f"the inner generator's weight on the {op!r} operator (loop.generator.mutation."
                           f"WEIGHTED_OPERATORS; all weights 0 but 'all': today's mutation)"
           for op in WEIGHTED_OPERATORS},
    },
    "generator": {
        "rate": "the inner mutation rate (each gene mutates with this chance)",
        "scale": "the inner mutation step size",
    },
}


def check_improver_genes(genes: Mapping[str, Mapping[str, Any]]) -> None:
    """An improver space may declare only the genes `IMPROVER_GENES` knows (a ValueError names the
    gene and lists them), and no architecture genes (an improver has no weights)."""
    for part, declared in genes.items():
        known = IMPROVER_GENES.get(part, {})
        unknown = sorted(set(declared) - set(known))
        if unknown:
            allowed = ", ".join(f"{p}.{g}" for p, gs in IMPROVER_GENES.items() for g in gs)
            raise ValueError(f"the improver family has no gene {', '.join(f'{part}.{g}' for g in unknown)}; "
                             f"an improver's genes are: {allowed}")
    if "candidates" in genes.get("recipe", {}) and genes["recipe"]["candidates"].type != "int":
        raise ValueError("the improver gene recipe.candidates must be an int gene")
    for name, gene in genes.get("recipe", {}).items():
        if name.startswith("weight_") and (gene.type == "choice" or gene.low < 0):
            raise ValueError(f"the improver gene recipe.{name} must be a number gene with low >= 0, got {gene}")
        if name == "inner_inherit" and (gene.type != "choice" or set(gene.choices) - {"free", "scratch", "parent"}):
            raise ValueError(f"the improver gene recipe.inner_inherit must be a choice among free, scratch, parent; "
                             f"got {gene}")
        if name == "inner_distill" and (gene.type != "choice" or any(
                c != "free" and (isinstance(c, (bool, str)) or not 0 <= c <= 1) for c in gene.choices)):
            raise ValueError(f"the improver gene recipe.inner_distill must be a choice among free and numbers in [0, 1]; "
                             f"got {gene}")
        if name == "inner_halving" and (gene.type != "choice" or any(not isinstance(c, bool) for c in gene.choices)):
            raise ValueError(f"the improver gene recipe.inner_halving must be a choice among true and false; got {gene}")


def improver_config(source: DictConfig, genome: Genome, task: tuple[str, int, int], generations: int,
                    compute: int, gate: str = "off") -> DictConfig:
    """The inner loop an improver genome runs on one task draw: `generations` inner generations of
    `candidates` candidates of at most `compute // candidates` steps each (the same compute for
    every improver, however it splits it)."""
    candidates = int(genome.recipe.get("candidates", source.objective.budget.candidates))
    if not 1 <= candidates <= compute:
        raise ValueError(f"improver gene recipe.candidates={candidates} must lie in [1, compute={compute}]")
    margin = genome.recipe.get("margin")
    weights = {k: float(v) for k, v in genome.recipe.items() if k.startswith("weight_")}
    if weights and source.generator.get("_target_") not in WEIGHTED_GENERATORS:
        raise ValueError(f"improver genes {sorted(weights)} weigh the operators of generator=self_adaptive or "
                         f"fixed; the inner loops run {source.generator.get('_target_')}")
    return inner_config(source, {**genome.generator, **weights}, task,
                        {"generations": generations, "candidates": candidates, "steps": compute // candidates},
                        gate, None if margin is None else float(margin), str(genome.recipe.get("inner_inherit", "free")),
                        genome.recipe.get("inner_distill", "free"), bool(genome.recipe.get("inner_halving", False)))
