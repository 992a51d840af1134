"""What evolves: successor families (how a genome becomes a model) and their gene spaces.

Families are listed here explicitly (no registration by import side effect).
"""

from successors.space import Gene, SuccessorSpace

FAMILIES = ("mlp",)


def build(genome, in_features: int, n_classes: int):
    """Build the untrained `torch.nn.Module` a genome describes."""
    if genome.family == "mlp":
        from successors.mlp import build_mlp

        return build_mlp(genome.arch, in_features, n_classes)
    raise ValueError(f"unknown successor family {genome.family!r}; known: {', '.join(FAMILIES)}")


__all__ = ["FAMILIES", "Gene", "SuccessorSpace", "build"]
