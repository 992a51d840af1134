"""`loop.execution.inherit`: successors built from their predecessor (copy, Net2Net growth) and taught by it."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import assert_matches_serial, ledger_events, run_loop, synthetic_train_view

from loop.execution.batched import Batched
from loop.checkpoints import weights_of
from loop.execution.serial import Serial, initial_model, start_model
from loop.execution.inherit import grow, linears
from loop.execution.pools import rebuild, to_wire, train_wired
from loop.stages import Candidate, DataView, Genome, Split, Successor, TaskShape

SHAPE = TaskShape(64, 10, 300, "cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def genome(depth=1, width=16, activation="tanh", inherit="parent", distill=0.0, optimizer="adam",
           lr=0.01, steps=40) -> Genome:
    return Genome("mlp", {"depth": depth, "width": width, "activation": activation, "dropout": 0.0},
                  {"optimizer": optimizer, "lr": lr, "steps": steps, "batch_size": 32, "weight_decay": 0.0,
                   "inherit": inherit, "distill": distill})


def trained_parent(g: Genome, seed: int = 1) -> torch.nn.Module:
    """A parent with non-trivial weights (random init, then perturbed so biases are not zero)."""
    model = initial_model(Candidate("0.0", g, None, seed), SHAPE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


def child_of(parent_genome: Genome, parent: torch.nn.Module, g: Genome, seed: int = 7, key: str = "1.0") -> Candidate:
    return Candidate(key, g, "p", seed, parent_genome, weights_of(parent))


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "silu"])
def test_wider_growth_preserves_the_function_for_every_activation(activation):
    small = genome(depth=2, width=8, activation=activation)
    parent = trained_parent(small)
    child, how = start_model(child_of(small, parent, genome(depth=2, width=23, activation=activation)), SHAPE)
    x = torch.rand(200, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (child.eval()(x) - parent.eval()(x)).abs().max() < 1e-5
    assert how == "grown"
    assert sum(p.numel() for p in child.parameters()) > sum(p.numel() for p in parent.parameters())


def test_wider_and_deeper_growth_preserves_a_relu_network():
    small = genome(depth=1, width=8, activation="relu")
    parent = trained_parent(small)
    child, how = start_model(child_of(small, parent, genome(depth=3, width=20, activation="relu")), SHAPE)
    x = torch.rand(200, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (child.eval()(x) - parent.eval()(x)).abs().max() < 1e-5
    assert how == "grown" and len(linears(child)) == 4


def test_deeper_growth_under_tanh_is_recorded_as_approximate():
    small = genome(depth=1, width=8, activation="tanh")
    _, how = start_model(child_of(small, trained_parent(small), genome(depth=2, width=8)), SHAPE)
    assert how == "grown-approx"


def test_copies_split_their_outgoing_weights_unevenly_so_they_can_diverge():
    parent, child = torch.nn.Linear(4, 2), torch.nn.Linear(4, 5)
    head_p, head_c = torch.nn.Linear(2, 3), torch.nn.Linear(5, 3)
    assert grow([parent, head_p], [child, head_c], torch.Generator().manual_seed(0)) is True
    copies = [u for u in range(2, 5) if torch.equal(child.weight[u], child.weight[0])]
    assert copies  # unit 0 was copied at least once (new units copy old ones)
    for u in copies:  # same incoming weights, different outgoing shares
        assert not torch.allclose(head_c.weight[:, u], head_c.weight[:, 0])


def test_same_shape_copies_and_smaller_or_unwanted_starts_from_scratch():
    g = genome(depth=2, width=16)
    parent = trained_parent(g)
    copied, how = start_model(child_of(g, parent, genome(depth=2, width=16, activation="relu")), SHAPE)
    assert how == "copied" and all(torch.equal(a, b) for a, b in zip(copied.parameters(), parent.parameters()))
    _, how = start_model(child_of(g, parent, genome(depth=1, width=16)), SHAPE)
    assert how == "scratch"  # shallower: cannot be grown
    _, how = start_model(child_of(g, parent, genome(depth=2, width=8)), SHAPE)
    assert how == "scratch"  # narrower
    _, how = start_model(Candidate("1.0", genome(inherit="scratch"), "p", 7), SHAPE)
    assert how == "scratch"


def test_a_child_that_inherits_starts_where_its_parent_ended():
    data = synthetic_train_view()
    g = genome(steps=60)
    (parent,) = Serial().train([Candidate("0.0", genome(inherit="scratch", steps=60), None, 1)], data, SHAPE)
    fresh, inherited = Serial().train([Candidate("1.0", genome(inherit="scratch", steps=5), "p", 2),
                                       child_of(g, parent.model, genome(steps=5), seed=2)], data, SHAPE)
    assert inherited.inherited == "copied" and fresh.inherited == "scratch"
    assert inherited.train["train_loss"] < fresh.train["train_loss"]


def test_distillation_teaches_the_teachers_labels():
    """With distill=1 the student learns the teacher's answers, not the gold labels."""
    data = synthetic_train_view()  # random labels: the gold labels and the teacher disagree
    teacher_genome = genome(inherit="scratch", width=32)
    teacher = trained_parent(teacher_genome).eval()
    x, y = data["train"].x, data["train"].y
    with torch.no_grad():
        teacher_labels = teacher(x).argmax(1)
    results = Serial().train([child_of(teacher_genome, teacher, genome(inherit="scratch", distill=d, steps=300,
                                                                       width=64), seed=5, key=f"1.{i}")
                              for i, d in enumerate((0.0, 1.0))], data, SHAPE)
    with torch.no_grad():
        gold, taught = (r.model(x).argmax(1) for r in results)
    assert (taught == teacher_labels).float().mean() > 0.8
    assert (taught == teacher_labels).float().mean() > (gold == teacher_labels).float().mean() + 0.3
    assert (gold == y).float().mean() > (taught == y).float().mean()


def test_batched_and_pooled_training_inherit_and_distil_as_serial_does():
    data = synthetic_train_view()
    small = genome(depth=1, width=8, activation="relu")
    parent = trained_parent(small)
    candidates = [child_of(small, parent, genome(depth=1, width=16, activation="relu", distill=d, lr=lr),
                           seed=10 + i, key=f"1.{i}")
                  for i, (d, lr) in enumerate([(0.0, 0.01), (0.5, 0.003), (0.9, 0.02)])]
    # Not distill=1.0 here: a child grown from its teacher starts as the teacher's function, so with
    # the teacher's distribution as its only target its gradient is float rounding alone, which Adam
    # (scale-free) turns into full-size steps: serial and batched then walk on different noise.
    serial = Serial().train(candidates, data, SHAPE)
    batched = Batched().train(candidates, data, SHAPE)
    pooled = [rebuild(c, train_wired(to_wire(c), data["train"], SHAPE, 60.0), SHAPE) for c in candidates]
    for s, b, p in zip(serial, batched, pooled):
        assert isinstance(s, Successor) and isinstance(b, Successor) and isinstance(p, Successor)
        assert s.inherited == b.inherited == p.inherited == "grown"
        assert_matches_serial(s, b)
        assert p.id == s.id  # the pools run serial's code on the wire format: bit for bit


def test_a_loop_whose_genomes_inherit_records_it(tmp_path):
    run_loop(tmp_path / "run", "successor.init.recipe.inherit=parent", "successor.init.recipe.distill=0.5")
    events = ledger_events(tmp_path / "run")
    trained = [e for e in events if e.event == "trained"]
    assert trained[0].detail["inherited"] == "scratch"  # generation 0 has no parent
    later = [e.detail["inherited"] for e in trained[1:]]
    assert set(later) & {"copied", "grown", "grown-approx"}  # some children really started from the parent
    for e in trained:  # every checkpoint card says what its trained event says
        card = json.loads((tmp_path / "run" / "successors" / f"{e.successor}.json").read_text())
        assert card["inherited"] == e.detail["inherited"]


def test_an_autoencoder_trunk_is_label_free_shared_and_stays_frozen():
    data = synthetic_train_view()
    g = genome(inherit="scratch", depth=1, width=16, activation="relu", steps=30)
    trunk = g.replace(recipe={"trunk": "autoencoder"})
    results = {how: Execution().train([Candidate(f"1.{i}", gg, "p", 3 + i) for i, gg in enumerate((g, trunk, trunk))],
                                      data, SHAPE)
               for how, Execution in (("serial", Serial), ("batched", Batched))}
    for learned, a, b in results.values():
        assert torch.equal(linears(a.model)[0].weight, linears(b.model)[0].weight)  # one trunk for all
        assert not torch.equal(linears(learned.model)[0].weight, linears(a.model)[0].weight)
    serial, batched = results["serial"][1], results["batched"][1]
    assert torch.allclose(linears(serial.model)[0].weight, linears(batched.model)[0].weight)  # frozen in both
    untrained = initial_model(Candidate("1.1", trunk, "p", 4), SHAPE)
    assert not torch.allclose(linears(serial.model)[1].weight, linears(untrained)[1].weight)  # head trained
    assert_matches_serial(serial, batched)
    # the labels do not enter: the same inputs with other labels give the same trunk
    from loop.execution.prior import autoencoder_trunk

    x = data["train"].x
    w1, _ = autoencoder_trunk(x, 16, "relu")
    assert torch.equal(w1, linears(serial.model)[0].weight)
    shuffled = DataView({"train": Split(x, data["train"].y.flip(0))}, ["train"], "execution")
    (other,) = Serial().train([Candidate("1.1", trunk, "p", 4)], shuffled, SHAPE)
    assert torch.equal(linears(other.model)[0].weight, linears(serial.model)[0].weight)
