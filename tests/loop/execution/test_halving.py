"""`execution=halving`: successive halving keeps the generation's steps and continues the better half."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loop.checkpoints import successor_id, weights_of
from loop.execution.halving import Halving, carve
from loop.execution.serial import Serial
from loop.objective.tasks import Digits
from loop.stages import Candidate, DataView, Genome, Quarantined, Successor, TaskShape

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
SHAPE = TaskShape(64, 10, 400, "cpu")
# (lr, steps): one learning rate far too small, so the contest has a clear loser
RECIPES = [(3e-3, 120), (1e-6, 100), (1e-2, 80), (1e-6, 140)]


@pytest.fixture(scope="module")
def train_view():
    torch.set_num_threads(1)
    task = Digits(budget={"generations": 1, "candidates": 1, "steps": 400}, fractions=FRACTIONS).prepare()
    return task.view("execution", "train")


def candidates(distill: float = 0.0) -> list[Candidate]:
    return [Candidate(f"1.{i}", Genome("mlp", {"depth": 1, "width": 16, "activation": "relu", "dropout": 0.0},
                                       {"optimizer": "adam", "lr": lr, "steps": steps, "batch_size": 32,
                                        "weight_decay": 0.0, "distill": distill}), None, 300 + i)
            for i, (lr, steps) in enumerate(RECIPES)]


def accuracy(model, split) -> float:
    with torch.no_grad():
        return (model(split.x).argmax(-1) == split.y).float().mean().item()


def test_the_better_half_goes_on_with_the_steps_the_others_did_not_take(train_view):
    proposed = candidates()
    results = Halving(Serial(), seed=5).train(proposed, train_view, SHAPE)
    assert [r.candidate for r in results] == proposed  # in order, as proposed
    kept = {r.candidate.key for r in results if r.train["halving/kept"] == 1}
    assert kept == {"1.0", "1.2"}  # the two usable learning rates
    steps = {r.candidate.key: r.train["steps"] for r in results}
    assert steps["1.1"] == 50 and steps["1.3"] == 70  # stopped after half their steps
    assert sum(steps.values()) == sum(steps for _, steps in RECIPES)  # the generation's compute, kept
    # the others' steps are shared equally: (50 + 70) // 2 each, on top of their own second half
    assert steps["1.0"] == 120 + 60 and steps["1.2"] == 80 + 60
    macs = 64 * 16 + 16 * 10  # every candidate is 64-16-10 at batch 32: compute follows the steps of all rungs
    assert all(r.train["compute"] == 3 * r.train["steps"] * 32 * macs for r in results)


def test_the_ranking_is_accuracy_on_held_back_train_rows_and_losers_are_their_first_rung(train_view):
    proposed = candidates()
    results = Halving(Serial(), seed=5).train(proposed, train_view, SHAPE)
    rest, held = carve(train_view["train"], 0.2, 5)
    assert len(held) + len(rest) == len(train_view["train"]) and abs(len(held) / len(train_view["train"]) - 0.2) < 0.01
    # the first rung, redone by hand on the rows it trains on
    halves = [Candidate(c.key, c.genome.replace(recipe={"steps": -(-c.genome.recipe["steps"] // 2)}), None, c.seed)
              for c in proposed]
    first = Serial().train(halves, DataView({"train": rest}, ["train"], "execution"), SHAPE)
    scores = sorted(((accuracy(f.model, held), f.candidate.key) for f in first), reverse=True)
    assert {key for _, key in scores[:2]} == {r.candidate.key for r in results if r.train["halving/kept"] == 1}
    for f, r in zip(first, results):
        if r.train["halving/kept"] == 0:
            assert all(np.array_equal(a, b) for a, b in zip(weights_of(f.model).values(), weights_of(r.model).values()))
        # every successor's id is its proposed genome's with its own weights
        assert r.id == successor_id(r.candidate.genome.to_dict(), weights_of(r.model))


def test_a_kept_candidate_continues_from_its_first_rung(train_view):
    """Its second rung starts from the first rung's weights: it ends better on the rows it trained on
    than the same genome trained only for the first rung's steps."""
    results = Halving(Serial(), seed=5).train(candidates(), train_view, SHAPE)
    rest, _ = carve(train_view["train"], 0.2, 5)
    kept = next(r for r in results if r.candidate.key == "1.0")
    half = Serial().train([Candidate("1.0", kept.genome.replace(recipe={"steps": 60}), None, 300)],
                          DataView({"train": rest}, ["train"], "execution"), SHAPE)[0]
    assert kept.train["train_loss"] < 0.8 * half.train["train_loss"]


def test_teacher_students_and_lone_candidates_train_whole(train_view):
    halving = Halving(Serial())
    students = halving.train(candidates(distill=0.5), train_view, SHAPE)  # no parent: trains on gold labels
    assert [r.train["steps"] for r in students] == [steps for _, steps in RECIPES]
    assert all("halving/kept" not in r.train for r in students)
    (alone,) = halving.train(candidates()[:1], train_view, SHAPE)
    assert alone.train["steps"] == 120 and "halving/kept" not in alone.train
    (plain,) = Serial().train(candidates()[:1], train_view, SHAPE)  # on the whole train split, as without halving
    assert alone.id == plain.id


def test_a_candidate_that_breaks_in_a_rung_is_quarantined_with_the_rung_named(train_view):
    proposed = candidates()
    broken = Candidate("1.9", proposed[0].genome.replace(recipe={"optimizer": "rmsprop"}), None, 9)
    results = Halving(Serial()).train([*proposed, broken], train_view, SHAPE)
    assert isinstance(results[-1], Quarantined)
    assert results[-1].reason.startswith("in the first rung of successive halving: ")
    assert "rmsprop" in results[-1].reason
    assert all(isinstance(r, Successor) for r in results[:-1])


@pytest.mark.parametrize("bad", [{"first": 1.0}, {"keep": 0}, {"validation": "0.2"}, {"keep": True},
                                 {"inner": "serial"}])
def test_bad_settings_are_refused(bad):
    settings = {"inner": Serial(), **bad}
    with pytest.raises(ValueError, match=f"execution.{next(iter(bad))}"):
        Halving(**settings)


def test_the_steps_left_are_dealt_out_whole_and_never_past_the_budgets_cap():
    from loop.execution.halving import share_out

    kept = [(Candidate(k, candidates()[0].genome, None, 0), None) for k in ("x", "y", "z")]
    steps = {"x": 100, "y": 100, "z": 100, "s": 100, "t": 101}
    first = {k: 50 for k in steps}
    more = share_out(kept, steps, first, cap=400)  # 51 + 50 left by s and t, dealt out: 34, 34, 33
    assert sorted(more.values()) == [83, 84, 84] and sum(more.values()) == sum(v - 50 for v in steps.values())
    capped = share_out(kept, steps, first, cap=60)  # each kept may train at most 60 steps in its second rung
    assert capped == {"x": 60, "y": 60, "z": 60}
