"""Task families: every member is a whole objective, a draw is a fixed member, and held-out data
never shapes what the train split is scaled by."""

from __future__ import annotations

import pytest
import torch

from loop.objective.families import FAMILIES, Family, check_families
from loop.objective.tasks import SPLITS, split_hash

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
BUDGET = {"generations": 1, "candidates": 1, "steps": 10}


def member(family: str, draw: int = 0):
    return Family(budget=BUDGET, fractions=FRACTIONS, family=family, draw=draw).prepare()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_five_disjoint_labelled_splits(family):
    task = member(family)
    assert task.name == f"{family}#0"
    assert set(task.splits) == set(SPLITS)
    rows = torch.cat([task.splits[s].x for s in SPLITS]).float()
    assert len(torch.unique(rows, dim=0)) == len(rows) or family in ("iris", "breast_cancer", "wine")
    for name in SPLITS:
        split = task.splits[name]
        assert len(split) > 0 and split.x.shape[1] == task.in_features
        assert 0 <= int(split.y.min()) and int(split.y.max()) < task.n_classes
    labels = torch.cat([task.splits[s].y for s in SPLITS])
    assert set(labels.tolist()) == set(range(task.n_classes))  # relabelled without gaps


@pytest.mark.parametrize("family", ["digits_subset", "digits_permuted", "digits_noisy", "classification", "modular"])
def test_a_draw_is_one_fixed_member_and_draws_differ(family):
    first, again, other = member(family, 1), member(family, 1), member(family, 2)
    assert [split_hash(first.splits[s]) for s in SPLITS] == [split_hash(again.splits[s]) for s in SPLITS]
    assert split_hash(first.splits["train"]) != split_hash(other.splits["train"])


def test_digits_subset_keeps_k_classes_and_relabels_them():
    task = member("digits_subset", 0)
    assert 4 <= task.n_classes <= 7 and task.image == (8, 8)
    assert len(torch.cat([task.splits[s].y for s in SPLITS])) < 1797  # other classes dropped


def test_tabular_families_are_scaled_by_the_train_split_alone():
    task = member("wine", 0)
    train, truth = task.splits["train"].x, task.splits["truth"].x
    assert torch.allclose(train.mean(0), torch.zeros(train.shape[1]), atol=1e-5)
    assert torch.allclose(train.std(0), torch.ones(train.shape[1]), atol=1e-5)
    assert not torch.allclose(truth.mean(0), torch.zeros(truth.shape[1]), atol=1e-2)  # truth did not take part


def test_modular_members_are_token_tasks():
    task = member("modular", 0)
    assert task.inputs == "tokens" and task.seq_len == 2 and task.vocab == task.n_classes


def test_unknown_families_and_bad_draws_are_named():
    with pytest.raises(ValueError, match=r"unknown task family 'mnist'; known families: digits_subset"):
        Family(budget=BUDGET, fractions=FRACTIONS, family="mnist")
    with pytest.raises(ValueError, match=r"objective.draw must be a whole number >= 0, got -1"):
        Family(budget=BUDGET, fractions=FRACTIONS, draw=-1)
    with pytest.raises(ValueError, match="must be a non-empty list"):
        check_families("wine", "families")
    assert check_families(["wine", "iris"], "families") == ["wine", "iris"]
