"""A frozen improver cannot move, its inner loops are paired seed for seed, and a bad protocol is
refused with its key named."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from loop.config import instantiate
from loop.generator.mutation import SelfAdaptive
from loop.meta.improver import Protocol, Snapshot, frozen_space, snapshot_config
from omegaconf import OmegaConf

PROTOCOL = Protocol(families=("classification", "digits_subset"), seeds=4, generations=2, candidates=2, steps=30)


def source():
    return compose_config("tracker=none")  # the default: generator=self_adaptive, gate=probes


def test_frozen_genes_do_not_move_under_a_self_adapting_generator():
    snap = Snapshot("s", {"rate": 0.6, "scale": 1.2})
    cfg = snapshot_config(source(), snap, PROTOCOL, 0)
    space = instantiate(cfg.successor, "successor")
    assert dict(space.initial.generator) == {"rate": 0.6, "scale": 1.2}
    generator = SelfAdaptive(space, adapt=True, tau=1.0)  # adapts hard: only the bounds can hold it
    children = generator.propose(space.initial, [], 50, np.random.default_rng(0))
    assert all(dict(c.generator) == {"rate": 0.6, "scale": 1.2} for c in children)
    assert len({(c.arch["width"], c.recipe["lr"]) for c in children}) > 10  # the model genes still move


def test_frozen_space_keeps_choice_and_log_genes_and_names_a_mismatch():
    space = {"rate": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
             "style": {"type": "choice", "choices": ["a", "b"]}}
    assert frozen_space(space, {"rate": 0.2, "style": "b"}) == {
        "rate": {"type": "float", "low": 0.2, "high": 0.2, "log": True},
        "style": {"type": "choice", "choices": ["b"]}}
    with pytest.raises(ValueError, match=r"generator genes \['rate'\] differ from the successor space's"):
        frozen_space(space, {"rate": 0.2})


def test_inner_config_is_the_source_run_on_a_held_out_draw():
    cfg = snapshot_config(source(), Snapshot("s", {"rate": 0.3, "scale": 0.4}), PROTOCOL, 3)
    assert (cfg.objective.family, cfg.objective.draw) == ("digits_subset", 1)  # seed 3: families[1], draw 1
    assert OmegaConf.to_container(cfg.objective.budget) == {"generations": 2, "candidates": 2, "steps": 30}
    assert cfg.gate._target_ == "loop.gate.gates.Off" and cfg.tracker._target_.endswith("NoTracker")
    assert cfg.generator._target_ == "loop.generator.mutation.SelfAdaptive"  # the run's own machinery
    assert cfg.successor.init.arch == source().successor.init.arch  # the model starts from generation 0
    run_gate = Protocol(families=("wine",), gate="run")
    assert snapshot_config(source(), Snapshot("s", {"rate": 0.3, "scale": 0.4}), run_gate, 0).gate._target_ \
        == "loop.gate.gates.Probes"


def test_seed_i_is_the_same_task_and_inner_seed_for_every_improver_and_the_control_only_reseeds():
    a = snapshot_config(source(), Snapshot("a", {"rate": 0.3, "scale": 0.4}), PROTOCOL, 2)
    b = snapshot_config(source(), Snapshot("b", {"rate": 0.9, "scale": 0.1}), PROTOCOL, 2)
    c = snapshot_config(source(), Snapshot("a", {"rate": 0.3, "scale": 0.4}), PROTOCOL, 2, control=True)
    assert (a.objective.family, a.objective.draw, a.seed) == (b.objective.family, b.objective.draw, b.seed)
    assert (c.objective.family, c.objective.draw) == (a.objective.family, a.objective.draw) and c.seed != a.seed
    other = Protocol(families=PROTOCOL.families, seeds=4, seed=1)
    assert other.task(2)[:2] == PROTOCOL.task(2)[:2] and other.task(2)[2] != PROTOCOL.task(2)[2]


@pytest.mark.parametrize("change,message", [
    ({"families": ("mnist",)}, "unknown task family 'mnist'"),
    ({"families": ()}, "families must be a non-empty list"),
    ({"seeds": 1}, "seeds must be a whole number >= 2, got 1"),
    ({"generations": 0}, "generations must be a whole number >= 1, got 0"),
    ({"steps": 2.5}, "steps must be a whole number >= 1, got 2.5"),
    ({"gate": "probes"}, r"gate must be one of \['off', 'run'\], got 'probes'"),
])
def test_a_bad_protocol_names_its_key(change, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**{"families": ("wine",), **change})


def test_the_protocol_record_and_hash_cover_what_is_held_out():
    record = PROTOCOL.record()
    assert record["families"] == ["classification", "digits_subset"]
    assert Protocol(families=("classification", "wine"), seeds=4, generations=2, candidates=2,
                    steps=30).sha256() != PROTOCOL.sha256()
    assert Snapshot("x", {"rate": 0.3}).key == Snapshot("y", {"rate": 0.3}, 4).key != Snapshot("x", {"rate": 0.31}).key


def test_an_improvers_operator_weights_and_inheritance_policy_are_frozen_into_its_inner_loops():
    from loop.meta.improver import check_improver_genes, improver_config
    from loop.stages import Genome
    from successors.space import SuccessorSpace

    genome = Genome("improver", {}, {"candidates": 4, "margin": 0.005, "inner_inherit": "parent", "inner_distill": 0.5,
                                     "weight_all": 0.5,
                                     "weight_lr": 0.25, "weight_restart": 0.0}, {"rate": 0.3, "scale": 0.4})
    cfg = improver_config(source(), genome, ("wine", 0, 7), generations=2, compute=120)
    space = instantiate(cfg.successor, "successor")
    assert dict(space.initial.generator) == {"rate": 0.3, "scale": 0.4, "weight_all": 0.5, "weight_lr": 0.25,
                                             "weight_restart": 0.0}
    assert space.genes["generator"]["weight_lr"].low == space.genes["generator"]["weight_lr"].high == 0.25
    assert space.initial.recipe["inherit"] == "parent" and tuple(space.genes["recipe"]["inherit"].choices) == ("parent",)
    assert space.initial.recipe["distill"] == 0.5 == space.genes["recipe"]["distill"].low == space.genes["recipe"]["distill"].high
    assert OmegaConf.to_container(cfg.objective.budget) == {"generations": 2, "candidates": 4, "steps": 30}
    free = improver_config(source(), genome.replace(recipe={"inner_inherit": "free", "inner_distill": "free"}), ("wine", 0, 7), 2, 120)
    free_space = instantiate(free.successor, "successor")
    assert free_space.genes["recipe"]["inherit"].choices == ("scratch", "parent")
    assert (free_space.genes["recipe"]["distill"].low, free_space.genes["recipe"]["distill"].high) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"improver genes \['weight_all', 'weight_lr', 'weight_restart'\] weigh the "
                                         r"operators of generator=self_adaptive or fixed; the inner loops run "
                                         r"loop.generator.bandit.Bandit"):
        improver_config(compose_config("tracker=none", "generator=bandit"), genome, ("wine", 0, 7), 2, 120)
    bad_genes = {"weight_lr": ({"type": "float", "low": -1.0, "high": 1.0}, 0.0, "must be a number gene with low >= 0"),
                 "inner_inherit": ({"type": "choice", "choices": ["free", "copy"]}, "free", "must be a choice among free"),
                 "inner_distill": ({"type": "choice", "choices": ["free", 2.0]}, "free", "must be a choice among free and")}
    for name, (gene, value, message) in bad_genes.items():
        with pytest.raises(ValueError, match=f"the improver gene recipe.{name} {message}"):
            SuccessorSpace("improver", {"recipe": {"candidates": 4, name: value}, "generator": {"rate": 0.3}},
                           {"recipe": {"candidates": {"type": "int", "low": 2, "high": 8}, name: gene},
                            "generator": {"rate": {"type": "float", "low": 0.05, "high": 1.0}}})
    check_improver_genes({})  # nothing declared, nothing to refuse


def test_an_improvers_halving_gene_wraps_the_inner_execution_and_its_inner_loop_halves():
    from loop.meta.improver import improver_config
    from loop.meta.utility import run_inner
    from loop.stages import Genome
    from successors.space import SuccessorSpace

    genome = Genome("improver", {}, {"candidates": 4, "margin": 0.005, "inner_halving": True}, {"rate": 0.3, "scale": 0.4})
    cfg = improver_config(source(), genome, ("wine", 0, 7), generations=2, compute=240)
    assert cfg.execution._target_ == "loop.execution.halving.Halving"
    assert OmegaConf.to_container(cfg.execution.inner) == OmegaConf.to_container(source().execution)
    again = improver_config(cfg, genome, ("wine", 0, 7), generations=2, compute=240)
    assert again.execution.inner._target_ == source().execution._target_  # never wrapped twice
    plain = improver_config(source(), genome.replace(recipe={"inner_halving": False}), ("wine", 0, 7), 2, 240)
    assert OmegaConf.to_container(plain.execution) == OmegaConf.to_container(source().execution)
    from loop.ledger import read

    with tempfile.TemporaryDirectory() as tmp:
        run = run_inner(cfg, Path(tmp) / "ledger.jsonl")
        trained = [e for e in read(Path(tmp) / "ledger.jsonl") if e.event == "trained" and e.generation > 0]
    kept = [e.metrics.get("halving/kept") for e in trained]
    assert kept.count(1) and kept.count(0)  # each generation kept some of its candidates and stopped others
    assert run.steps <= 60 + 2 * 240  # generation 0 alone, then the compute of each generation, never more
    with pytest.raises(ValueError, match="the improver gene recipe.inner_halving must be a choice among true and false"):
        SuccessorSpace("improver", {"recipe": {"candidates": 4, "inner_halving": False}, "generator": {"rate": 0.3}},
                       {"recipe": {"candidates": {"type": "int", "low": 2, "high": 8},
                                   "inner_halving": {"type": "choice", "choices": [False, "yes"]}},
                        "generator": {"rate": {"type": "float", "low": 0.05, "high": 1.0}}})
