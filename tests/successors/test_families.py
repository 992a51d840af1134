"""Successor families on the tasks they take: mlp (any inputs), cnn (images), transformer (tokens).

Each family trains on CPU and its loss falls; a family given inputs it cannot read fails before
anything runs, naming both; checkpoints round-trip; non-stackable candidates train one at a time
under `execution=batched`; and a real tiny loop runs for each new family and objective.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import successors
from conftest import ledger_events, run_loop
from loop.execution.batched import Batched, population_key
from loop.checkpoints import Checkpoints, successor_id, weights_of
from loop.config import ConfigError
from loop.execution.serial import Serial, initial_model, train_candidate
from loop.objective.tasks import Digits, ModularArithmetic, SequenceTask
from loop.stages import Candidate, DataView, Genome, Successor, TaskShape

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
BUDGET = {"generations": 1, "candidates": 1, "steps": 60}
RECIPE = {"optimizer": "adam", "lr": 0.01, "steps": 60, "batch_size": 64, "weight_decay": 1e-5}
ARCH = {
    "mlp": {"depth": 1, "width": 32, "activation": "relu", "dropout": 0.0},
    "cnn": {"depth": 2, "channels": 6, "kernel": 3, "activation": "relu", "dropout": 0.1},
    "transformer": {"depth": 1, "width": 16, "heads": 2, "ff": 32, "dropout": 0.1, "pool": "last"},
}
# tiny loops: 1 generation of 2 candidates, at most 20 steps each; from a 20-step baseline a
# candidate may gain > 0.5 in one generation, which would (rightly) trip the capability-jump wire
SHORT = ["objective.budget.generations=1", "objective.budget.candidates=2", "objective.budget.steps=20",
         "device=cpu", "gate.tripwires.capability_jump=0"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread; on a loaded 2-core machine two threads are ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks():
    return {"digits": Digits(BUDGET, FRACTIONS).prepare(),
            "modular_arithmetic": ModularArithmetic(BUDGET, FRACTIONS, p=11).prepare(),
            "sequence": SequenceTask(BUDGET, FRACTIONS, mode="reverse", length=4, vocab=5, items=600).prepare()}


def genome(family: str, **arch) -> Genome:
    return Genome(family, {**ARCH[family], **arch}, RECIPE)


def candidate(family: str, seed: int = 0, **arch) -> Candidate:
    return Candidate(f"1.{seed}", genome(family, **arch), None, seed)


PAIRS = [("mlp", "digits"), ("mlp", "modular_arithmetic"), ("mlp", "sequence"), ("cnn", "digits"),
         ("transformer", "modular_arithmetic"), ("transformer", "sequence")]


@pytest.mark.parametrize("family,objective", PAIRS)
def test_family_trains_on_a_task_it_takes(tasks, family, objective):
    task = tasks[objective]
    shape = TaskShape.of(task, "cpu", family=family)
    train = task.splits["train"]
    c = candidate(family)
    with torch.no_grad():
        before = F.cross_entropy(initial_model(c, shape).eval()(train.x), train.y).item()
    trained = train_candidate(c, train, shape, time_limit_s=120)
    assert trained.train["train_loss"] < 0.9 * before, (before, trained.train)
    assert trained.model(train.x[:5]).shape == (5, task.n_classes)


@pytest.mark.parametrize("family,objective,reads", [
    ("transformer", "digits", "token sequences"),
    ("cnn", "modular_arithmetic", "image"),
    ("cnn", "sequence", "image"),
])
def test_a_family_refuses_inputs_it_cannot_read(tasks, family, objective, reads):
    task = tasks[objective]
    with pytest.raises(ConfigError, match=f"successor={family} cannot take objective={objective}.*{reads}"):
        TaskShape.of(task, "cpu", family=family)
    with pytest.raises(ValueError, match=f"successor={family}"):  # build checks too
        successors.build(genome(family), TaskShape.of(task, "cpu"))


def test_cnn_needs_an_image_not_just_features():
    flat = TaskShape(64, 10, 10, "cpu", objective="flat")  # float features, no image
    assert successors.accepts("mlp", flat) and not successors.accepts("cnn", flat)
    with pytest.raises(ValueError, match="successor=cnn cannot take objective=flat.*64 float features; "
                                         "for this objective choose successor=mlp"):
        successors.check_task("cnn", flat)


def test_transformer_width_is_rounded_up_to_a_multiple_of_heads(tasks):
    shape = TaskShape.of(tasks["sequence"], "cpu")
    model = successors.build(genome("transformer", width=30, heads=4), shape)
    assert model.tokens.weight.shape == (shape.vocab, 32)
    assert model.layers[0].self_attn.num_heads == 4
    # each layer is initialised on its own, not as copies of one
    deep = successors.build(genome("transformer", depth=2), shape)
    assert not torch.equal(deep.layers[0].linear1.weight, deep.layers[1].linear1.weight)


def test_mlp_on_tokens_one_hot_encodes_them(tasks):
    shape = TaskShape.of(tasks["modular_arithmetic"], "cpu")
    model = successors.build(genome("mlp", width=8), shape)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == shape.seq_len * shape.vocab == 2 * 11
    assert model(torch.tensor([[1, 2], [10, 0]])).shape == (2, 11)


@pytest.mark.parametrize("family,objective", [("mlp", "sequence"), ("cnn", "digits"),
                                              ("transformer", "modular_arithmetic")])
def test_checkpoint_round_trip(tmp_path, tasks, family, objective):
    task = tasks[objective]
    shape = TaskShape.of(task, "cpu")
    c = candidate(family, seed=3)
    model = initial_model(c, shape).eval()
    sid = successor_id(c.genome.to_dict(), weights_of(model))
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save_weights(sid, model)
    loaded = checkpoints.load_model(sid, c.genome, shape).eval()
    assert successor_id(c.genome.to_dict(), weights_of(loaded)) == sid
    x = task.splits["probe"].x
    assert torch.equal(loaded(x), model(x))


def test_batched_trains_what_cannot_stack_one_at_a_time(tasks):
    """Token MLPs (a one-hot layer in front) and other families never stack: batched trains them
    exactly as serial does, the same ids."""
    task = tasks["sequence"]
    shape = TaskShape.of(task, "cpu")
    group = [candidate("mlp", 0), candidate("mlp", 1), candidate("transformer", 2)]
    assert all(population_key(c, shape) is None for c in group)
    digits = TaskShape.of(tasks["digits"], "cpu")
    assert population_key(candidate("mlp"), digits) is not None
    assert population_key(candidate("cnn"), digits) is None
    view = DataView(task.splits, ["train"], "execution")
    batched = Batched().train(group, view, shape)
    serial = Serial().train(group, view, shape)
    assert all(isinstance(r, Successor) for r in batched)
    assert [r.id for r in batched] == [r.id for r in serial]


# --- real tiny loops --------------------------------------------------------------------------


TOKEN_PROBES = {"calibration", "consistency", "fingerprint", "validity"}  # gate=tokens


def check_finished(run_dir, family: str) -> list:
    events = ledger_events(run_dir)
    kinds = [e.event for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    evaluated = [e for e in events if e.event == "evaluated"]
    assert len(evaluated) == 3  # the baseline + 2 candidates
    assert all({"proxy", "truth"} <= set(e.metrics) for e in evaluated)
    for e in evaluated:
        assert Checkpoints(run_dir).load_card(e.successor)["genome"]["family"] == family
    return events


@pytest.mark.parametrize("objective,family,gate,probes", [
    ("modular_arithmetic", "transformer", "tokens", TOKEN_PROBES),
    ("sequence", "mlp", "tokens", TOKEN_PROBES),
    ("digits", "cnn", "probes", TOKEN_PROBES | {"robustness", "ood", "shortcut"}),
])
def test_tiny_loop(tmp_path, objective, family, gate, probes):
    state, lines = run_loop(tmp_path / "run", f"objective={objective}", f"successor={family}", f"gate={gate}",
                            "promotion.margin=0", *SHORT)
    assert state.finished and "finished" in lines[-1]
    events = check_finished(tmp_path / "run", family)
    started = events[0]
    assert f"objective {objective}" in started.reasons[0]
    gated = [e for e in events if e.event in ("promoted", "vetoed", "paused") and e.generation > 0]
    # margin 0: some nominee reaches the gate, except a 20-step transformer on (a + b) mod p, which stays
    # at chance (tests/loop/objective/test_objectives.py reviews a token nominee with this gate directly)
    assert gated or (objective, family) == ("modular_arithmetic", "transformer")
    for e in gated:  # the gate ran: its probes only
        assert {k.split("/")[1] for k in e.metrics if k.startswith("probe/")} == probes


@pytest.mark.parametrize("overrides,names", [
    (["successor=transformer"], "successor=transformer cannot take objective=digits"),
    (["objective=sequence", "successor=cnn", "gate=tokens"], "successor=cnn cannot take objective=sequence"),
    (["objective=sequence"], r"gate: 6 of its \d+ probes cannot run on objective=sequence, which gives sequences "
                             "of 7 tokens.*: calibration reads ece_shift.*; robustness adds.*use gate=tokens"),
])
def test_a_bad_pairing_fails_before_the_run_starts(tmp_path, overrides, names):
    with pytest.raises(ConfigError, match=names):
        run_loop(tmp_path / "run", *overrides, *SHORT)
    assert not (tmp_path / "run" / "ledger.jsonl").exists()


def test_a_transformer_loop_repeats_itself(tmp_path):
    """Same config and seed on CPU: the same ledger, event for event (only `time` differs)."""
    overrides = ["objective=sequence", "successor=transformer", "gate=tokens", *SHORT]
    run_loop(tmp_path / "a", *overrides)
    run_loop(tmp_path / "b", *overrides)

    def facts(run):  # everything but time and the wall-clock seconds in generation_finished's detail
        return [(e.event, e.generation, e.successor, e.parent, e.metrics, e.reasons) for e in ledger_events(run)]
    assert facts(tmp_path / "a") == facts(tmp_path / "b")
