"""`execution=batched` trains stacked populations that match `serial` model for model."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_matches_serial
from loop.execution.batched import Batched, population_key
from loop.execution.serial import Serial
from loop.objective.tasks import Digits
from loop.stages import Candidate, DataView, Genome, Quarantined, Split, Successor, TaskShape

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
    for s, b in zip(serial, batched, strict=True):
        assert_matches_serial(s, b)


def test_dropout_trains_in_the_population_too(train_view):
    results = Batched().train(population("adam", dropout=0.2), train_view, SHAPE)
    assert all(isinstance(r, Successor) and r.train["train_loss"] < 1.0 for r in results)


def mixed_population() -> list[Candidate]:
    """Every depth, several widths, all activations and optimizers, with and without weight decay."""
    genes = [(1, 8, "relu", "sgd"), (3, 40, "tanh", "adam"), (2, 16, "gelu", "adamw"), (1, 24, "silu", "adam"),
             (3, 12, "relu", "adamw"), (2, 32, "silu", "sgd"), (2, 20, "tanh", "sgd")]
    return [Candidate(f"1.{i}", Genome("mlp", {"depth": depth, "width": width, "activation": activation, "dropout": 0.0},
                                       {"optimizer": optimizer, "lr": lr, "steps": steps, "batch_size": batch,
                                        "weight_decay": decay}), None, 200 + i)
            for i, ((depth, width, activation, optimizer), (lr, steps, batch, decay))
            in enumerate(zip(genes, RECIPES + RECIPES))]


def test_mixed_shapes_share_one_population_and_match_serial(train_view):
    mixed = mixed_population()
    assert all(population_key(c) is not None for c in mixed)
    results = Batched().train(mixed, train_view, SHAPE)
    assert [r.candidate.key for r in results] == [c.key for c in mixed]
    serial = Serial().train(mixed, train_view, SHAPE)
    for s, b in zip(serial, results, strict=True):
        assert_matches_serial(s, b)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_each_reported_train_loss_is_the_returned_models_own(train_view, dtype):
    """The population's final losses are computed at once; each must be what the model handed back
    (on the CPU, in eval mode) scores on every train row, recomputed here one model at a time."""
    x, y = train_view["train"].x, train_view["train"].y
    results = Batched(dtype=dtype).train(mixed_population(), train_view, SHAPE)
    assert len(results) == 7
    for r in results:
        assert not r.model.training and all(p.device.type == "cpu" for p in r.model.parameters())
        with torch.no_grad():
            own = torch.nn.functional.cross_entropy(r.model(x), y).item()
        assert r.train["train_loss"] == pytest.approx(own, abs=1e-6), r.candidate.genome.arch


def test_padding_and_skipped_layers_leave_each_model_as_if_alone(train_view):
    """Zero-padded units and skipped layers never move and never touch a model's own units: each
    member of a mixed population ends where it would in a population of one, up to float rounding."""
    mixed = mixed_population()
    together = Batched().train(mixed, train_view, SHAPE)
    for candidate, member in zip(mixed, together):
        alone = Batched().train([candidate], train_view, SHAPE)[0]
        for (name, w), (_, w_alone) in zip(member.model.state_dict().items(), alone.model.state_dict().items()):
            assert torch.allclose(w, w_alone, atol=1e-5), (candidate.genome.arch, name)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_model_trains_bit_for_bit_the_same_wherever_it_sits_in_its_population(train_view, threads):
    """Copies of one candidate anywhere in a population (of every optimizer, 7 models: the flat
    parameters end past a whole vector) end with the same weights exactly: no element is rounded on
    another path for where it lies (the fused Adam kernel's scalar tail, a thread's share)."""
    torch.set_num_threads(threads)
    try:
        mixed = mixed_population()[:3]  # sgd, adam, adamw
        copies = mixed + [Candidate(f"2.{i}", c.genome, None, c.seed) for i, c in enumerate(mixed + mixed[:1])]
        trained = Batched().train(copies, train_view, SHAPE)
    finally:
        torch.set_num_threads(1)  # as the module's fixture set it
    for copy, original in [(3, 0), (4, 1), (5, 2), (6, 0)]:
        mine, theirs = trained[copy].model.state_dict(), trained[original].model.state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), (copy, original)


def test_the_stacked_layout_has_a_slot_per_layer_of_the_deepest_model_and_no_more():
    """`stack_slots`: hidden slots 0..D-1 of the deepest model (width the widest), then the output
    slot; one flat tensor of exactly those slots, each slot's weights and biases a contiguous view
    of it, in order and tiling it; a slot's models in its mask; each model's own weights in its
    top-left corner, zeros around them."""
    from loop.execution.stack import stack_slots

    torch.manual_seed(0)
    shallow = [torch.nn.Linear(64, 8), torch.nn.Linear(8, 10)]
    deep = [torch.nn.Linear(64, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 10)]
    flat, weights, biases, uses = stack_slots([shallow, deep], torch.device("cpu"))
    assert [tuple(w.shape) for w in weights] == [(2, 64, 16), (2, 16, 16), (2, 16, 16), (2, 16, 10)]
    assert [tuple(b.shape) for b in biases] == [(2, 1, 16), (2, 1, 16), (2, 1, 16), (2, 1, 10)]
    assert flat.shape == (2 * (65 * 16 + 2 * 17 * 16 + 17 * 10),)
    at = 0
    for t in [t for pair in zip(weights, biases) for t in pair]:
        assert t.is_contiguous() and t.data_ptr() == flat[at:].data_ptr()
        at += t.numel()
    assert at == flat.numel()
    assert len(uses) == 3 and uses[0] is None  # every model has a first hidden layer
    assert [u.flatten().tolist() for u in uses[1:]] == [[False, True], [False, True]]
    assert torch.equal(weights[0][0, :, :8], shallow[0].weight.detach().T) and not weights[0][0, :, 8:].any()
    assert torch.equal(weights[3][0, :8], shallow[1].weight.detach().T) and not weights[3][0, 8:].any()
    assert not weights[1][0].any() and torch.equal(weights[2][1], deep[2].weight.detach().T)


def test_chunks_hold_similar_sizes_and_order_is_kept(train_view):
    mixed = mixed_population()
    results = Batched(chunk=3).train(mixed, train_view, SHAPE)
    assert [r.candidate.key for r in results] == [c.key for c in mixed]
    serial = Serial().train(mixed, train_view, SHAPE)
    for s, b in zip(serial, results, strict=True):
        assert_matches_serial(s, b)


@pytest.mark.parametrize("device,chunk,sizes", [("cpu", None, [32, 8]), ("cuda", None, [40]), ("cpu", 15, [15, 15, 10])])
def test_populations_are_chunked_by_device_unless_told(monkeypatch, device, chunk, sizes):
    """execution.chunk null: 32 models per population on a CPU, 1024 on a GPU (no GPU needed to see the split)."""
    groups = []
    monkeypatch.setattr(Batched, "train_group", lambda self, group, split, task: groups.append(len(group)) or
                        [Quarantined(c, "not trained here") for c in group])
    candidates = [Candidate(f"1.{i}", population("adam")[0].genome, None, i) for i in range(40)]
    view = DataView({"train": Split(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))}, ["train"], "execution")
    results = Batched(chunk=chunk).train(candidates, view, TaskShape(64, 10, 300, device))
    assert groups == sizes and [r.candidate.key for r in results] == [c.key for c in candidates]


def test_a_population_that_fails_as_a_whole_quarantines_each_member_with_the_reason(train_view, monkeypatch):
    """What no single member caused (the population's own training raised): every member is
    quarantined, each under its own candidate, with the error; the loop goes on."""
    import loop.execution.batched as batched

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(batched, "train_stack", broken)
    candidates = population("adam")
    results = Batched().train(candidates, train_view, SHAPE)
    assert [r.candidate for r in results] == candidates
    assert all(isinstance(r, Quarantined) and r.reason == "training raised RuntimeError: out of memory"
               for r in results)


def test_a_diverging_member_is_quarantined_alone(train_view):
    candidates = population("sgd")
    exploding = candidates[1].genome.replace(recipe={"lr": 1e20})
    candidates[1] = Candidate(candidates[1].key, exploding, None, candidates[1].seed)
    results = Batched().train(candidates, train_view, SHAPE)
    assert isinstance(results[1], Quarantined) and "step" in results[1].reason
    assert all(isinstance(r, Successor) for i, r in enumerate(results) if i != 1)
    assert_matches_serial(Serial().train([candidates[0]], train_view, SHAPE)[0], results[0])


def test_a_broken_member_is_quarantined_alone_with_the_reason(train_view):
    good = population("adam")[:2]
    broken = [Candidate("1.8", Genome("mlp", {"depth": 1, "width": 8, "activation": "nope", "dropout": 0.0},
                                      good[0].genome.recipe), None, 8),
              Candidate("1.9", good[0].genome.replace(recipe={"optimizer": "lion"}), None, 9)]
    results = Batched().train([broken[0], *good, broken[1]], train_view, SHAPE)
    assert isinstance(results[0], Quarantined) and "activation 'nope'" in results[0].reason
    assert isinstance(results[3], Quarantined) and "optimizer 'lion'" in results[3].reason
    assert all(isinstance(r, Successor) for r in results[1:3])


@pytest.mark.parametrize("bad", [dict(chunk=0), dict(chunk=2.5), dict(chunk=True), dict(time_limit_s=0), dict(dtype="float16")])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Batched(**bad)
    with pytest.raises(ValueError, match=r"execution.dtype must be one of \['float32', 'bfloat16'\], got 'fp8'"):
        Serial(dtype="fp8")


@pytest.mark.parametrize("execution", [Batched, Serial])
def test_bfloat16_trains_in_mixed_precision_repeatably_and_near_float32(train_view, execution):
    """bfloat16 computes the passes in it (float32 weights and optimizer): the same run twice gives the
    same weights; against float32, the same models to within what bfloat16's 8 bits of mantissa allow."""
    candidates = mixed_population()[:4] if execution is Batched else population("adam")[:2]
    low = execution(dtype="bfloat16").train(candidates, train_view, SHAPE)
    again = execution(dtype="bfloat16").train(candidates, train_view, SHAPE)
    full = execution().train(candidates, train_view, SHAPE)
    x, y = train_view["train"].x, train_view["train"].y
    for a, b, f in zip(low, again, full, strict=True):
        assert a.id == b.id and all(p.dtype == torch.float32 for p in a.model.parameters())
        assert a.id != f.id  # it did train otherwise
        with torch.no_grad():
            agree = (a.model(x).argmax(1) == f.model(x).argmax(1)).float().mean().item()
            accuracy = [(m.model(x).argmax(1) == y).float().mean().item() for m in (a, f)]
        assert agree > 0.9 and abs(accuracy[0] - accuracy[1]) < 0.02
        assert a.train["train_loss"] == pytest.approx(f.train["train_loss"], rel=0.05)
