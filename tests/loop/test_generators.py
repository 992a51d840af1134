"""Generators: plain mutation, and self-adaptive mutation whose step sizes are inherited genes."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import CONFIGS
from loop.generators import Mutate, SelfAdaptive
from successors.space import SuccessorSpace


@pytest.fixture(scope="module")
def space() -> SuccessorSpace:
    spec = OmegaConf.to_container(OmegaConf.load(CONFIGS / "successor" / "mlp.yaml"))
    spec.pop("_target_")
    return SuccessorSpace(**spec)


def children(generator, space, n=200, seed=0):
    return generator.propose(space.initial, [], n, np.random.default_rng(seed))


def test_self_adaptive_mutates_and_bounds_its_own_genes(space):
    kids = children(SelfAdaptive(space), space)
    rates = {k.generator["rate"] for k in kids}
    scales = {k.generator["scale"] for k in kids}
    assert len(rates) > 150 and len(scales) > 150  # every child carries its own step sizes
    for kid in kids:
        assert space.check(kid) == kid  # all genes, its own included, within bounds
    # log-normal around the parent's genes: the median stays near them
    assert np.median([k.generator["scale"] for k in kids]) == pytest.approx(space.initial.generator["scale"], rel=0.15)


def test_fixed_keeps_the_generator_genes_and_still_mutates_the_rest(space):
    kids = children(SelfAdaptive(space, adapt=False), space)
    assert all(dict(k.generator) == dict(space.initial.generator) for k in kids)
    assert all((dict(k.arch), dict(k.recipe)) != (dict(space.initial.arch), dict(space.initial.recipe)) for k in kids)


def test_a_larger_inherited_step_size_moves_genes_further(space):
    def spread(scale: float) -> float:
        parent = space.initial.replace(generator={"scale": scale, "rate": 1.0})
        kids = SelfAdaptive(space, adapt=False).propose(parent, [], 300, np.random.default_rng(1))
        return float(np.std([np.log(k.recipe["lr"]) for k in kids]))

    assert spread(1.0) > 2 * spread(0.1)


def test_plain_mutation_leaves_the_generator_genes_alone(space):
    kids = children(Mutate(space), space)
    assert all(dict(k.generator) == dict(space.initial.generator) for k in kids)


def test_same_seed_same_children(space):
    assert children(SelfAdaptive(space), space, 20, 5) == children(SelfAdaptive(space), space, 20, 5)


def test_self_adaptive_needs_its_genes_in_the_space(space):
    spec = OmegaConf.to_container(OmegaConf.load(CONFIGS / "successor" / "mlp.yaml"))
    spec.pop("_target_")
    spec["init"]["generator"], spec["space"]["generator"] = {}, {}
    with pytest.raises(ValueError, match="needs the generator genes"):
        SelfAdaptive(SuccessorSpace(**spec))
    with pytest.raises(ValueError, match="tau"):
        SelfAdaptive(space, tau=0)
