"""`execution=batched` trains stacked populations that match `serial` model for model."""

from __future__ import annotations

import pytest
import torch

from loop.batched import Batched, population_key
from loop.execution import Serial
from loop.objectives import Digits
from loop.stages import Candidate, Genome, Quarantined, Successor, TaskShape

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
SHAPE = TaskShape(64, 10, 300, "cpu")
RECIPES = [(3e-3, 200, 64, 1e-5), (1e-2, 120, 32, 1e-4), (1e-3, 300, 128, 0.0), (5e-3, 150, 48, 1e-3)]


@pytest.fixture(scope="module")
def train_view():
    torch.set_num_threads(1)
    task = Digits(budget={"generations": 1, "candidates": 1, "steps": 300}, fractions=FRACTIONS).prepare()
    return task.view("execution", "train")


def population(optimizer: str, dropout: float = 0.0, width: int = 32) -> list[Candidate]:
    """Same shape, different recipes: learning rate, steps, batch size, weight decay."""
    return [Candidate(f"1.{i}", Genome("mlp", {"depth": 2, "width": width, "activation": "tanh", "dropout": dropout},
                                       {"optimizer": optimizer, "lr": lr, "steps": steps, "batch_size": batch,
                                        "weight_decay": decay}), None, 100 + i)
            for i, (lr, steps, batch, decay) in enumerate(RECIPES)]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_batched_matches_serial_losses_model_for_model(train_view, optimizer):
    candidates = population(optimizer)
    serial = Serial().train(candidates, train_view, SHAPE)
    batched = Batched().train(candidates, train_view, SHAPE)
    for s, b in zip(serial, batched):
        assert isinstance(s, Successor) and isinstance(b, Successor)
        assert b.candidate is s.candidate and b.train["steps"] == s.train["steps"]
        # the stated tolerance: float rounding only (typically 1e-7; Adam can amplify it a little)
        assert b.train["train_loss"] == pytest.approx(s.train["train_loss"], abs=1e-3, rel=0.02)


def test_dropout_trains_in_the_population_too(train_view):
    results = Batched().train(population("adam", dropout=0.2), train_view, SHAPE)
    assert all(isinstance(r, Successor) and r.train["train_loss"] < 1.0 for r in results)


def test_mixed_shapes_are_grouped_and_order_is_kept(train_view):
    mixed = population("adam")[:2] + population("sgd")[2:] + [
        Candidate("1.9", population("adam", width=16)[0].genome, None, 7)]
    keys = [population_key(c) for c in mixed]
    assert len(set(keys)) == 3
    results = Batched(chunk=2).train(mixed, train_view, SHAPE)
    assert [r.candidate.key for r in results] == [c.key for c in mixed]
    serial = Serial().train(mixed, train_view, SHAPE)
    for s, b in zip(serial, results):
        assert b.train["train_loss"] == pytest.approx(s.train["train_loss"], abs=1e-3, rel=0.02)


def test_a_diverging_member_is_quarantined_alone(train_view):
    candidates = population("sgd")
    exploding = candidates[1].genome.replace(recipe={"lr": 1e20})
    candidates[1] = Candidate(candidates[1].key, exploding, None, candidates[1].seed)
    results = Batched().train(candidates, train_view, SHAPE)
    assert isinstance(results[1], Quarantined) and "step" in results[1].reason
    assert all(isinstance(r, Successor) for i, r in enumerate(results) if i != 1)
    alone = Serial().train([candidates[0]], train_view, SHAPE)[0]
    assert results[0].train["train_loss"] == pytest.approx(alone.train["train_loss"], abs=1e-3, rel=0.02)


def test_a_broken_group_is_quarantined_with_the_reason(train_view):
    broken = [Candidate(f"1.{i}", Genome("mlp", {"depth": 1, "width": 8, "activation": "nope", "dropout": 0.0},
                                          population("adam")[0].genome.recipe), None, i) for i in range(2)]
    results = Batched().train(broken, train_view, SHAPE)
    assert all(isinstance(r, Quarantined) and "activation 'nope'" in r.reason for r in results)


@pytest.mark.parametrize("bad", [dict(chunk=0), dict(chunk=2.5), dict(time_limit_s=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Batched(**bad)
