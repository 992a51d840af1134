"""What evolves: successor families (how a genome becomes a model) and their gene spaces.

Families are listed here explicitly (no registration by import side effect). Each family reads
some kinds of task inputs (`loop.stages.TaskShape`): `mlp` features or tokens (token ids are one-hot
encoded in front of it), `cnn` float features that are an image, `transformer` token sequences,
`improver` task draws (an improver is a successor one level up: `loop/meta/`, no weights). A pairing
that cannot work fails before the run starts (`check_task`, called by `TaskShape.of`).

torch is imported only when a model is built, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from successors.space import Gene, SuccessorSpace

if TYPE_CHECKING:
    from torch import nn

    from loop.stages import Genome, TaskShape

FAMILIES = ("mlp", "cnn", "transformer", "improver")

# what each family reads, as a person would say it; `accepts` is the rule
READS = {
    "mlp": "float features, or token ids one-hot encoded in front of it",
    "cnn": "float features that are an image (e.g. objective=digits)",
    "transformer": "token sequences (e.g. objective=modular_arithmetic or objective=sequence)",
    "improver": "task draws (objective=improvers; experiment=recursive_improver)",
}


def accepts(family: str, shape: "TaskShape") -> bool:
    """Whether `family` can build a model for the inputs `shape` describes."""
    if family == "cnn":
        return shape.inputs == "features" and len(shape.image) == 2
    if family == "transformer":
        return shape.inputs == "tokens"
    if family == "improver":
        return shape.inputs == "tasks"
    return family == "mlp" and shape.inputs != "tasks"


def check_task(family: str, shape: "TaskShape") -> None:
    """Raise a ValueError naming the family and the objective when the family cannot read the
    objective's inputs, and which families can."""
    if family not in FAMILIES:
        raise ValueError(f"unknown successor family {family!r}; known: {', '.join(FAMILIES)}")
    if not accepts(family, shape):
        fitting = [f"successor={f}" for f in FAMILIES if accepts(f, shape)]
        raise ValueError(f"successor={family} cannot take objective={shape.objective or '?'}: the family reads "
                         f"{READS[family]}, but the objective gives {shape.describe()}; for this objective "
                         f"choose {' or '.join(fitting)}")


def build(genome: "Genome", shape: "TaskShape") -> "nn.Module":
    """Build the untrained `torch.nn.Module` a genome describes, for the inputs `shape` describes."""
    check_task(genome.family, shape)
    if genome.family == "mlp":
        from torch import nn

        from successors.inputs import OneHot
        from successors.mlp import build_mlp

        if shape.inputs == "tokens":  # one-hot ids, flattened by the MLP's own first layer
            return nn.Sequential(OneHot(shape.vocab), *build_mlp(genome.arch, shape.seq_len * shape.vocab,
                                                                 shape.n_classes))
        return build_mlp(genome.arch, shape.in_features, shape.n_classes)
    if genome.family == "improver":
        from successors.improver import Improver

        return Improver(genome)
    if genome.family == "cnn":
        from successors.cnn import build_cnn

        return build_cnn(genome.arch, tuple(shape.image), shape.n_classes)
    from successors.transformer import build_transformer

    return build_transformer(genome.arch, shape.vocab, shape.seq_len, shape.n_classes)


__all__ = ["FAMILIES", "Gene", "SuccessorSpace", "accepts", "build", "check_task"]
