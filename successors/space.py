"""Gene spaces: the bounds inside which a generator may move a successor's genes.

A space is written in YAML (`configs/successor/*.yaml`) next to the generation-0 genome, and is
checked when it is built, so a bad bound or an initial gene outside its bounds fails at start with
the key's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from loop.stages import Genome, GeneValue

PARTS = ("arch", "recipe", "generator")


@dataclass(frozen=True)
class Gene:
    """One gene's bounds: `int` and `float` between low and high (optionally log-scaled), or a
    `choice` among a list."""

    name: str
    type: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False  # mutate multiplicatively (learning rates, widths)
    choices: tuple[GeneValue, ...] = ()

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> "Gene":
        kind = spec.get("type")
        if kind == "choice":
            choices = tuple(spec.get("choices") or ())
            if len(choices) < 1:
                raise ValueError(f"gene {name}: a choice gene needs a non-empty `choices` list")
            return cls(name, "choice", choices=choices)
        if kind not in ("int", "float"):
            raise ValueError(f"gene {name}: type must be one of int, float, choice; got {kind!r}")
        low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError(f"gene {name}: low and high must be numbers, got {low!r} and {high!r}")
        if low > high or (log and low <= 0):
            raise ValueError(f"gene {name}: need low <= high{' and low > 0 (log scale)' if log else ''},"
                             f" got low={low} high={high}")
        return cls(name, kind, float(low), float(high), log)

    def check(self, value: Any) -> GeneValue:
        """Return `value` if it lies in this gene's bounds, else raise naming the gene."""
        if self.type == "choice":
            if value not in self.choices:
                raise ValueError(f"gene {self.name}={value!r} is not one of {list(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.type == "int" and float(value) != int(value)):
            raise ValueError(f"gene {self.name}={value!r} must be a{'n int' if self.type == 'int' else ' number'}")
        if not self.low <= value <= self.high:
            raise ValueError(f"gene {self.name}={value!r} is outside [{self.low:g}, {self.high:g}]")
        return int(value) if self.type == "int" else float(value)

    def clip(self, value: float) -> GeneValue:
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.type == "int" else float(value)

    def perturb(self, value: GeneValue, scale: float, rng) -> GeneValue:
        """A bounded mutation of `value`: log-normal for log genes, Gaussian otherwise; a choice
        gene jumps to another choice."""
        if self.type == "choice":
            others = [c for c in self.choices if c != value]
            return others[rng.integers(len(others))] if others else value
        if self.log:
            new = math.exp(math.log(value) + scale * rng.standard_normal())
        else:
            new = value + scale * (self.high - self.low) * rng.standard_normal()
        if self.type == "int" and round(new) == value:  # an int gene must move at least one step
            new = value + (1 if rng.random() < 0.5 else -1)
        if self.clip(new) == value and self.low < self.high:  # stuck at a bound: reflect inward
            new = value - (new - value)
        return self.clip(new)


class SuccessorSpace:
    """A successor family, its generation-0 genome and the bounds of every gene.

    Selected with `successor=<name>`; e.g. `successor=mlp`.
    """

    def __init__(self, family: str, init: Mapping[str, Mapping[str, Any]],
                 space: Mapping[str, Mapping[str, Mapping[str, Any]]]):
        from successors import FAMILIES

        if family not in FAMILIES:
            raise ValueError(f"family={family!r} is unknown; known families: {', '.join(FAMILIES)}")
        unknown = set(init) - set(PARTS) | set(space) - set(PARTS)
        if unknown:
            raise ValueError(f"init/space may only have the parts {PARTS}, got {sorted(unknown)}")
        self.family = family
        self.genes: dict[str, dict[str, Gene]] = {
            part: {name: Gene.parse(f"{part}.{name}", spec) for name, spec in (space.get(part) or {}).items()}
            for part in PARTS
        }
        if family == "improver":  # one level up: only the genes an improver's inner loops read
            from loop.meta.improver import check_improver_genes

            check_improver_genes(self.genes)
        for part in PARTS:
            given, declared = set((init.get(part) or {})), set(self.genes[part])
            if given != declared:
                raise ValueError(f"init.{part} must set exactly the genes of space.{part}: "
                                 f"missing {sorted(declared - given)}, extra {sorted(given - declared)}")
        self.initial = self.check(Genome(family, init.get("arch") or {}, init.get("recipe") or {},
                                         init.get("generator") or {}))

    def check(self, genome: Genome) -> Genome:
        """Return `genome` with every gene checked against (and normalised to) its bounds."""
        if genome.family != self.family:
            raise ValueError(f"genome family {genome.family!r} is not this space's {self.family!r}")
        parts = {}
        for part in PARTS:
            values = getattr(genome, part)
            if set(values) != set(self.genes[part]):
                raise ValueError(f"genome {part} genes {sorted(values)} differ from the space's "
                                 f"{sorted(self.genes[part])}")
            parts[part] = {name: gene.check(values[name]) for name, gene in self.genes[part].items()}
        return Genome(self.family, parts["arch"], parts["recipe"], parts["generator"])
