"""`loop.execution.serial`: serial training, determinism and quarantine of broken candidates."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import synthetic_train_view

from loop.checkpoints import successor_id, weights_of
from loop.execution.serial import Quarantine, Serial, make_optimizer, train_candidate
from loop.stages import AccessError, Candidate, DataView, Genome, Quarantined, Split, Successor, TaskShape

FEATURES, CLASSES = 64, 10


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train ~40x faster on one thread than with intra-op threads fighting for a busy
    CPU; restore the setting so other test modules see the default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> DataView:
    return synthetic_train_view()


def genome(activation="tanh", depth=1, width=16, optimizer="adam", lr=0.01, steps=30, batch_size=32,
           weight_decay=0.0, dropout=0.0) -> Genome:
    return Genome("mlp", {"depth": depth, "width": width, "activation": activation, "dropout": dropout},
                  {"optimizer": optimizer, "lr": lr, "steps": steps, "batch_size": batch_size,
                   "weight_decay": weight_decay})


def shape(max_steps=600) -> TaskShape:
    return TaskShape(FEATURES, CLASSES, max_steps, "cpu")


def test_serial_trains_successors(data):
    candidates = [Candidate("1.0", genome(), "parent", 1),
                  Candidate("1.1", genome(depth=2, width=8, optimizer="sgd", lr=0.05), "parent", 2)]
    results = Serial().train(candidates, data, shape())
    assert len(results) == 2
    for candidate, result in zip(candidates, results):
        assert isinstance(result, Successor), result
        assert result.candidate == candidate and result.genome == candidate.genome
        assert math.isfinite(result.train["train_loss"]) and result.train["train_loss"] > 0
        assert result.train["steps"] == 30
        assert result.parameters == sum(p.numel() for p in result.model.parameters())
        assert len(result.id) == 16 and result.id == successor_id(candidate.genome.to_dict(),
                                                                   weights_of(result.model))
        assert not result.model.training
        assert next(result.model.parameters()).device.type == "cpu"
        assert result.model(torch.zeros(3, FEATURES)).shape == (3, CLASSES)
    assert results[0].parameters == FEATURES * 16 + 16 + 16 * CLASSES + CLASSES
    assert results[1].parameters == FEATURES * 8 + 8 + 8 * 8 + 8 + 8 * CLASSES + CLASSES
    assert results[0].id != results[1].id


def test_training_lowers_the_loss(data):
    untrained = Serial().train([Candidate("0.0", genome(steps=1, lr=1e-6), None, 5)], data, shape())[0]
    trained = Serial().train([Candidate("0.0", genome(steps=120, lr=0.01), None, 5)], data, shape())[0]
    assert trained.train["train_loss"] < untrained.train["train_loss"]


def test_steps_are_clipped_to_the_task_budget(data):
    (result,) = Serial().train([Candidate("1.0", genome(steps=500), None, 1)], data, shape(max_steps=7))
    assert isinstance(result, Successor)
    assert result.train["steps"] == 7
    (result,) = Serial().train([Candidate("1.0", genome(steps=5), None, 1)], data, shape(max_steps=7))
    assert result.train["steps"] == 5


def test_batch_size_larger_than_the_split_is_fine(data):
    (result,) = Serial().train([Candidate("1.0", genome(batch_size=10_000, steps=3), None, 1)], data, shape())
    assert isinstance(result, Successor)


def test_same_seed_gives_identical_weights_and_id(data):
    candidate = Candidate("1.0", genome(dropout=0.2), None, 11)
    a = Serial().train([candidate], data, shape())[0]
    b = Serial().train([candidate], data, shape())[0]
    assert a.id == b.id
    assert a.train == b.train
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    c = Serial().train([Candidate("1.0", genome(dropout=0.2), None, 12)], data, shape())[0]
    assert c.id != a.id


def test_the_id_depends_on_the_genome_not_only_the_weights(data):
    result = Serial().train([Candidate("1.0", genome(), None, 3)], data, shape())[0]
    other = genome(weight_decay=1e-6)
    assert successor_id(other.to_dict(), weights_of(result.model)) != result.id


def test_a_diverging_candidate_is_quarantined_with_the_step(data):
    # ReLU + SGD at lr 1e20: two layers of ~1e20 weights overflow float32 to inf/NaN within 25 steps.
    # (lr 1e6 only gives a huge finite loss on this data, and tanh merely saturates.)
    bad = Candidate("1.1", genome(activation="relu", optimizer="sgd", lr=1e20, steps=30), None, 3)
    good = Candidate("1.0", genome(), None, 3)
    results = Serial().train([good, bad], data, shape())
    assert isinstance(results[0], Successor)
    assert isinstance(results[1], Quarantined)
    assert results[1].candidate == bad
    assert "step" in results[1].reason
    assert "/30" in results[1].reason
    assert "nan" in results[1].reason.lower() or "inf" in results[1].reason.lower()


def test_train_candidate_raises_quarantine_directly(data):
    bad = Candidate("1.1", genome(activation="relu", optimizer="sgd", lr=1e20, steps=30), None, 3)
    with pytest.raises(Quarantine, match="at step 25/30"):
        train_candidate(bad, data["train"], shape(), time_limit_s=60.0)


def test_a_candidate_that_raises_is_quarantined(data):
    broken = Candidate("1.2", genome(activation="swish"), None, 4)  # bypasses the space's checks
    results = Serial().train([broken, Candidate("1.3", genome(), None, 4)], data, shape())
    assert isinstance(results[0], Quarantined)
    assert "raised" in results[0].reason
    assert "ValueError" in results[0].reason and "swish" in results[0].reason
    assert isinstance(results[1], Successor)  # the loop goes on


def test_an_unknown_optimizer_is_quarantined(data):
    (result,) = Serial().train([Candidate("1.0", genome(optimizer="lbfgs"), None, 1)], data, shape())
    assert isinstance(result, Quarantined)
    assert "raised" in result.reason and "lbfgs" in result.reason


def test_a_tiny_time_limit_quarantines(data):
    results = Serial(time_limit_s=1e-9).train([Candidate("1.0", genome(steps=30), None, 1)], data, shape())
    assert isinstance(results[0], Quarantined)
    assert "time limit" in results[0].reason
    assert "step" in results[0].reason


@pytest.mark.parametrize("limit", [-1, 0, True, "60", None])
def test_serial_refuses_a_bad_time_limit(limit):
    with pytest.raises(ValueError, match="time_limit_s"):
        Serial(time_limit_s=limit)


def test_serial_sees_only_the_train_split():
    view = DataView({"train": Split(torch.zeros(2, FEATURES), torch.zeros(2, dtype=torch.long))},
                    [], "execution")
    with pytest.raises(AccessError):
        Serial().train([Candidate("1.0", genome(), None, 1)], view, shape())


def test_make_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    recipe = {"optimizer": "adamw", "lr": 0.1, "weight_decay": 0.01}
    opt = make_optimizer(recipe, params)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.01
    assert isinstance(make_optimizer({**recipe, "optimizer": "sgd"}, params), torch.optim.SGD)
    assert isinstance(make_optimizer({**recipe, "optimizer": "adam"}, params), torch.optim.Adam)
    with pytest.raises(ValueError, match="rmsprop"):
        make_optimizer({**recipe, "optimizer": "rmsprop"}, params)


@pytest.mark.parametrize("execution", ["serial", "batched"])
def test_threads_are_set_for_training_and_checked(data, execution, monkeypatch):
    """`threads=2` asks torch for 2 threads before training; `threads=None` leaves torch's own. (Asked
    of a spy: training on 2 real threads inside mutmut's forked workers deadlocks in OpenMP.)"""
    from loop.execution.batched import Batched

    plugin = {"serial": Serial, "batched": Batched}[execution]
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    plugin(threads=2).train([Candidate("1.0", genome(steps=3), None, 1)], data, shape())
    plugin().train([Candidate("1.0", genome(steps=3), None, 1)], data, shape())
    assert asked == [2]
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="execution.threads must be null"):
            plugin(threads=bad)


def test_distillation_loss_mixes_gold_and_teacher_per_row_for_any_leading_shape():
    """Against a direct computation: (1 - w) x cross-entropy with the label - w x sum(p_teacher x
    log p_student), over the last axis, for (rows, classes) and (models, rows, classes) alike."""
    from loop.execution.serial import distillation_loss

    g = torch.Generator().manual_seed(0)
    for shape in [(6, 4), (3, 5, 4)]:
        logits = torch.randn(shape, generator=g, dtype=torch.float64)
        y = torch.randint(0, 4, shape[:-1], generator=g)
        soft = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), -1)
        log_p = logits - logits.exp().sum(-1, keepdim=True).log()
        gold = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        for w in (0.0, 0.3, 1.0):
            expected = (1 - w) * gold - w * (soft * log_p).sum(-1)
            torch.testing.assert_close(distillation_loss(logits, y, soft, w), expected)
        torch.testing.assert_close(distillation_loss(logits, y, None, 0.3), gold)  # no teacher: gold only


def test_a_quarantine_keeps_its_own_words_and_anything_else_is_named():
    from loop.execution.serial import Quarantine, quarantine_reason

    assert quarantine_reason(Quarantine("training loss became nan at step 3/40")) == \
        "training loss became nan at step 3/40"
    assert quarantine_reason(ValueError("boom")) == "training raised ValueError: boom"


def test_the_batch_plan_is_the_candidates_seed_alone_whatever_torch_drew_before():
    """Serial, batched and pooled training must see the same batches: the plan may not read torch's
    global generator (which model initialisation has already advanced, differently per family)."""
    from loop.execution.serial import batch_plan

    candidate = Candidate("1.0", genome(steps=20, batch_size=8), None, seed=7)
    torch.manual_seed(1)
    first = batch_plan(candidate, 100, 600)
    torch.manual_seed(2)
    torch.rand(1000)
    assert torch.equal(first, batch_plan(candidate, 100, 600)) and first.shape == (20, 8)
    other = Candidate("1.0", genome(steps=20, batch_size=8), None, seed=8)
    assert not torch.equal(first, batch_plan(other, 100, 600))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_threads_must_be_null_or_a_whole_number_of_at_least_one(bad):
    from loop.execution.serial import check_threads

    with pytest.raises(ValueError, match=r"^execution.threads must be null \(torch's default: every core\) or a "
                                         rf"whole number >= 1, got {bad!r}$".replace("'", "'")):
        check_threads(bad)
    check_threads(None)
    check_threads(2)
