"""Genomes, gene spaces, bounded mutation and building a successor from its genome."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import successors
from loop.generator.mutation import Mutate
from loop.stages import Genome, TaskShape
from successors.space import PARTS, Gene, SuccessorSpace

ROOT = Path(__file__).resolve().parents[2]
MLP_YAML = ROOT / "configs" / "successor" / "mlp.yaml"


def mlp_spec() -> dict:
    spec = OmegaConf.to_container(OmegaConf.load(MLP_YAML), resolve=True)
    assert spec.pop("_target_") == "successors.SuccessorSpace"
    return spec


@pytest.fixture(scope="module")
def space() -> SuccessorSpace:
    return SuccessorSpace(**mlp_spec())


def genome(**arch) -> Genome:
    return Genome("mlp", {"depth": 2, "width": 32, "activation": "relu", "dropout": 0.1, **arch},
                  {"optimizer": "adam", "lr": 0.01, "steps": 200, "batch_size": 64, "weight_decay": 1e-4},
                  {"sigma": 0.2})


# --- Genome ----------------------------------------------------------------------------------


def test_genome_round_trips_through_json():
    g = genome()
    data = g.to_dict()
    assert data == {"family": "mlp",
                    "arch": {"depth": 2, "width": 32, "activation": "relu", "dropout": 0.1},
                    "recipe": {"optimizer": "adam", "lr": 0.01, "steps": 200, "batch_size": 64,
                               "weight_decay": 1e-4},
                    "generator": {"sigma": 0.2}}
    back = Genome.from_dict(json.loads(json.dumps(data)))
    assert back == g
    assert back.canonical() == g.canonical()
    assert Genome.from_dict(json.loads(g.canonical())) == g
    assert json.loads(g.canonical()) == data


def test_genome_canonical_is_independent_of_key_order():
    a = Genome("mlp", {"width": 8, "depth": 1}, {"lr": 0.1, "steps": 5})
    b = Genome("mlp", {"depth": 1, "width": 8}, {"steps": 5, "lr": 0.1})
    assert a == b and a.canonical() == b.canonical()
    assert Genome.from_dict({"family": "mlp", "arch": {}, "recipe": {}}).generator == {}


def test_genome_is_immutable():
    g = genome()
    with pytest.raises(TypeError):
        g.arch["depth"] = 3
    with pytest.raises(TypeError):
        g.recipe["lr"] = 1.0
    with pytest.raises(TypeError):
        g.generator["sigma"] = 1.0
    with pytest.raises(TypeError):
        del g.arch["depth"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.arch = {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.family = "cnn"


def test_genome_copies_the_mappings_it_is_given():
    arch = {"depth": 1, "width": 8}
    g = Genome("mlp", arch, {})
    arch["depth"] = 3
    assert g.arch["depth"] == 1
    data = g.to_dict()
    data["arch"]["width"] = 99
    assert g.arch["width"] == 8


def test_genome_replace_merges_and_leaves_the_original():
    g = genome()
    h = g.replace(arch={"depth": 3}, recipe={"lr": 0.1})
    assert h.arch["depth"] == 3 and h.arch["width"] == 32 and h.recipe["lr"] == 0.1
    assert g.arch["depth"] == 2 and g.recipe["lr"] == 0.01
    assert h.generator == g.generator


# --- SuccessorSpace --------------------------------------------------------------------------


def test_space_from_the_shipped_mlp_config(space):
    assert space.family == "mlp"
    assert set(space.genes) == set(PARTS)
    assert set(space.genes["arch"]) == {"depth", "width", "activation", "dropout"}
    # the recipe genes every family shares (mlp.yaml may declare more, e.g. inheritance)
    assert {"optimizer", "lr", "steps", "batch_size", "weight_decay"} <= set(space.genes["recipe"])
    init = space.initial
    assert isinstance(init, Genome) and init.family == "mlp"
    assert dict(init.arch) == {"depth": 1, "width": 16, "activation": "tanh", "dropout": 0.0}
    assert init.recipe["optimizer"] == "sgd" and init.recipe["lr"] == pytest.approx(0.003)
    assert space.check(init) == init
    for part in PARTS:
        for name, gene in space.genes[part].items():
            assert gene.check(getattr(init, part)[name]) == getattr(init, part)[name]
    assert isinstance(init.arch["depth"], int) and isinstance(init.arch["dropout"], float)
    assert space.genes["arch"]["width"].log and not space.genes["arch"]["dropout"].log


def test_space_check_refuses_genes_outside_the_space(space):
    init = space.initial
    with pytest.raises(ValueError, match="arch.depth"):
        space.check(init.replace(arch={"depth": 4}))
    with pytest.raises(ValueError, match="arch.activation"):
        space.check(init.replace(arch={"activation": "sigmoid"}))
    with pytest.raises(ValueError, match="arch.depth"):
        space.check(init.replace(arch={"depth": 1.5}))
    with pytest.raises(ValueError, match="recipe.lr"):
        space.check(init.replace(recipe={"lr": "fast"}))
    with pytest.raises(ValueError, match="extra"):
        space.check(init.replace(arch={"extra": 1}))
    with pytest.raises(ValueError, match="family"):
        space.check(Genome("cnn", init.arch, init.recipe, init.generator))


def broken(mutate) -> dict:
    spec = mlp_spec()
    mutate(spec)
    return spec


@pytest.mark.parametrize("mutate, gene", [
    (lambda s: s["space"]["arch"].update(depth={"type": "int", "low": 3, "high": 1}), "arch.depth"),
    (lambda s: s["space"]["recipe"].update(lr={"type": "float", "low": 0.0, "high": 0.3, "log": True}), "recipe.lr"),
    (lambda s: s["space"]["recipe"].update(lr={"type": "float", "low": -1.0, "high": 0.3, "log": True}), "recipe.lr"),
    (lambda s: s["space"]["arch"].update(width={"type": "integer", "low": 8, "high": 256}), "arch.width"),
    (lambda s: s["space"]["arch"].update(width={"low": 8, "high": 256}), "arch.width"),
    (lambda s: s["space"]["arch"].update(width={"type": "int", "low": "8", "high": 256}), "arch.width"),
    (lambda s: s["space"]["arch"].update(activation={"type": "choice", "choices": []}), "arch.activation"),
    (lambda s: s["init"]["arch"].update(depth=7), "arch.depth"),
    (lambda s: s["init"]["recipe"].update(lr=1.0), "recipe.lr"),
    (lambda s: s["init"]["arch"].update(activation="sigmoid"), "arch.activation"),
    (lambda s: s["init"]["arch"].pop("width"), "width"),
    (lambda s: s["init"]["recipe"].update(momentum=0.9), "momentum"),
])
def test_bad_specs_raise_value_error_naming_the_gene(mutate, gene):
    with pytest.raises(ValueError) as info:
        SuccessorSpace(**broken(mutate))
    assert gene in str(info.value)


def test_unknown_family_is_refused():
    spec = mlp_spec()
    spec["family"] = "rnn"
    with pytest.raises(ValueError, match="'rnn'.*mlp, cnn, transformer"):
        SuccessorSpace(**spec)


def test_unknown_part_is_refused():
    spec = mlp_spec()
    spec["space"]["optimizer_state"] = {}
    with pytest.raises(ValueError, match="optimizer_state"):
        SuccessorSpace(**spec)


def test_gene_check_and_clip():
    gene = Gene.parse("arch.depth", {"type": "int", "low": 1, "high": 3})
    assert gene.check(2) == 2 and isinstance(gene.check(2.0), int)
    assert gene.clip(7.2) == 3 and gene.clip(-4) == 1
    with pytest.raises(ValueError, match="arch.depth"):
        gene.check(True)
    lr = Gene.parse("recipe.lr", {"type": "float", "low": 1e-4, "high": 0.3, "log": True})
    assert lr.log and lr.check(0.01) == 0.01
    assert Gene.parse("g", {"type": "float", "low": 0.5, "high": 0.5}).check(0.5) == 0.5


# --- Mutate ----------------------------------------------------------------------------------


def assert_inside(space: SuccessorSpace, child: Genome) -> None:
    assert space.check(child) == child
    for part in PARTS:
        for name, gene in space.genes[part].items():
            value = getattr(child, part)[name]
            if gene.type == "choice":
                assert value in gene.choices
            else:
                assert gene.low <= value <= gene.high, (part, name, value)
                if gene.type == "int":
                    assert isinstance(value, int)


def differs(a: Genome, b: Genome) -> bool:
    return any(getattr(a, part)[k] != getattr(b, part)[k] for part in PARTS for k in getattr(a, part))


@pytest.mark.parametrize("rate, scale", [(0.3, 0.4), (1.0, 5.0), (0.05, 0.01)])
def test_mutate_children_stay_inside_the_bounds(space, rate, scale):
    mutate = Mutate(space, rate=rate, scale=scale)
    rng = np.random.default_rng(1234)
    parents = [space.initial, interior_parent(space), extreme_parent(space)]
    for i in range(200):
        parent = parents[i % len(parents)]
        (child,) = mutate.propose(parent, [], 1, rng)
        assert_inside(space, child)
        assert child.family == parent.family and child.generator == parent.generator


def interior_parent(space: SuccessorSpace) -> Genome:
    """A parent with every gene strictly inside its bounds."""
    return space.check(space.initial.replace(
        arch={"depth": 2, "width": 32, "activation": "relu", "dropout": 0.2},
        recipe={"optimizer": "adam", "lr": 0.01, "steps": 200, "batch_size": 64, "weight_decay": 1e-4}))


def extreme_parent(space: SuccessorSpace) -> Genome:
    """A parent with every numeric gene at its upper bound."""
    return space.check(space.initial.replace(
        arch={"depth": 3, "width": 256, "dropout": 0.5},
        recipe={"lr": 0.3, "steps": 600, "batch_size": 256, "weight_decay": 0.01}))


def test_mutate_children_differ_from_an_interior_parent(space):
    mutate = Mutate(space)
    parent = interior_parent(space)
    children = mutate.propose(parent, [], 200, np.random.default_rng(7))
    assert len(children) == 200
    for child in children:
        assert_inside(space, child)
        assert differs(child, parent)
    assert len({c.canonical() for c in children}) > 150  # mutation actually explores


def test_mutate_children_differ_from_a_parent_at_its_bounds(space):
    # The shipped generation-0 genome has depth=1 and dropout=0.0, both at their lower bound.
    mutate = Mutate(space)
    parent = space.initial
    for child in mutate.propose(parent, [], 200, np.random.default_rng(0)):
        assert differs(child, parent)


def test_same_seed_gives_the_same_children(space):
    mutate = Mutate(space)
    a = mutate.propose(space.initial, [], 20, np.random.default_rng(42))
    b = mutate.propose(space.initial, [], 20, np.random.default_rng(42))
    c = mutate.propose(space.initial, [], 20, np.random.default_rng(43))
    assert [g.canonical() for g in a] == [g.canonical() for g in b]
    assert [g.canonical() for g in a] != [g.canonical() for g in c]


def test_mutate_does_not_change_the_parent(space):
    parent = interior_parent(space)
    before = copy.deepcopy(parent.to_dict())
    Mutate(space, rate=1.0).propose(parent, [], 10, np.random.default_rng(0))
    assert parent.to_dict() == before


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"rate": 1.5}, {"scale": 0}, {"scale": -1}])
def test_mutate_refuses_bad_settings(space, kwargs):
    with pytest.raises(ValueError, match="generator."):
        Mutate(space, **kwargs)


# --- successors.build ------------------------------------------------------------------------

DIGITS = TaskShape(64, 10, 600, "cpu", image=(8, 8), objective="digits")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_build_mlp_output_shape(depth):
    import torch

    model = successors.build(genome(depth=depth, width=12), DIGITS)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == depth + 1
    out = model(torch.randn(5, 64))
    assert out.shape == (5, 10)
    assert model(torch.randn(4, 8, 8)).shape == (4, 10)  # inputs are flattened


def test_build_counts_parameters_and_dropout():
    import torch

    model = successors.build(genome(depth=1, width=16, dropout=0.0), DIGITS)
    assert sum(p.numel() for p in model.parameters()) == 64 * 16 + 16 + 16 * 10 + 10
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    with_dropout = successors.build(genome(depth=2, dropout=0.3), DIGITS)
    assert sum(isinstance(m, torch.nn.Dropout) for m in with_dropout.modules()) == 2


def test_build_refuses_unknown_family_and_activation():
    with pytest.raises(ValueError, match="unknown successor family 'rnn'"):
        successors.build(Genome("rnn", {}, {}), DIGITS)
    with pytest.raises(ValueError, match="activation 'swish'"):
        successors.build(genome(activation="swish"), DIGITS)
