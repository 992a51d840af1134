"""Genomes round-trip through JSON unchanged: the ledger stores every proposed genome as JSON, and a
resumed run rebuilds the generator's history from it, so an int gene that came back as a float (or a
float 1.0 as an int) would change canonical(), successor ids and the next proposals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import CONFIGS, compose_config
from loop.config import instantiate
from loop.generator.bandit import OPERATORS, Bandit
from loop.generator.crossover import Crossover
from loop.generator.mutation import Mutate, SelfAdaptive
from loop.ledger import canonical
from loop.stages import Genome, Past

SUCCESSORS = sorted(p.stem for p in (CONFIGS / "successor").glob("*.yaml"))


def through_json(genome: Genome) -> Genome:
    return Genome.from_dict(json.loads(json.dumps(genome.to_dict())))


def through_ledger(genome: Genome) -> Genome:
    """As the ledger writes a `proposed` event's detail and the state fold reads it back."""
    return Genome.from_dict(json.loads(canonical({"genome": genome.to_dict()}))["genome"])


def assert_round_trips(genome: Genome) -> None:
    for back in (through_json(genome), through_ledger(genome)):
        assert back == genome and back.canonical() == genome.canonical()
        for part in ("arch", "recipe", "generator"):
            for key, value in getattr(genome, part).items():
                assert type(getattr(back, part)[key]) is type(value), f"{part}.{key}: {value!r}"


def space_of(name: str):
    """The successor space as a run builds it (Hydra composes the file's defaults list, if any)."""
    return instantiate(compose_config(f"successor={name}").successor, "successor")


@pytest.mark.parametrize("name", SUCCESSORS)
def test_every_shipped_initial_genome_round_trips(name):
    assert_round_trips(space_of(name).initial)


@pytest.mark.parametrize("name", SUCCESSORS)
def test_mutated_children_round_trip(name):
    space = space_of(name)
    rng = np.random.default_rng(0)
    generators = [Mutate(space, rate=1.0, scale=1.0)]
    if {"rate", "scale"} <= set(space.genes["generator"]):
        usable = OPERATORS if space.genes["arch"] else ("all", "recipe", "crossover")  # an improver: no arch, no lr
        generators += [SelfAdaptive(space), Crossover(space), Bandit(space, operators=usable)]
    parent, history = space.initial, []
    for g in range(1, 4):  # a few generations, so crossover and the bandit's operators all run
        for generator in generators:
            kids = generator.propose(parent, history, 6, rng)
            for kid in kids:
                assert_round_trips(kid)
            history.append(Past(g, tuple(through_json(k) for k in kids),
                                tuple(float(rng.random()) for _ in kids), "none", ()))
        parent = kids[0]


def test_int_genes_stay_int_and_float_genes_stay_float():
    genome = Genome("mlp", {"depth": 2, "width": 256, "dropout": 1.0, "activation": "relu"},
                    {"lr": 0.1 + 0.2, "steps": 150, "weight_decay": 1e-300, "batch_size": 2**40},
                    {"rate": 1.0, "scale": 5e-324})
    assert_round_trips(genome)
    back = through_json(genome)
    assert back.arch["dropout"] == 1.0 and type(back.arch["dropout"]) is float
    assert type(back.arch["width"]) is int and back.recipe["lr"] == 0.1 + 0.2
    assert '"dropout":1.0' in back.canonical()  # so a float gene hashes the same as before the trip


def test_a_genome_without_generator_genes_round_trips():
    genome = Genome("mlp", {"depth": 1}, {"lr": 0.01})
    assert_round_trips(genome)
    assert Genome.from_dict({"family": "mlp", "arch": {"depth": 1}, "recipe": {"lr": 0.01}}) == genome
