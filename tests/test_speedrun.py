"""experiment=speedrun: training compute counted, a score that rewards less of it at the target, and
the gate's fixed correctness check on the audit split."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ledger_events, run_loop
from loop.execution.serial import Serial, multiply_adds
from loop.gate.gates import Probes
from loop.objective.tasks import Digits
from loop.stages import Budget, Candidate, DataView, Genome, Scored, Scores, Split, Successor, Task, TaskShape
from loop.tools.report import write_report
from loop.tools.runs import parse, speedrun

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}


def test_training_compute_is_steps_x_batch_x_3_x_forward_multiply_adds():
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    assert multiply_adds(model, torch.zeros(1, 64)) == 64 * 16 + 16 * 10
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    assert multiply_adds(conv, torch.zeros(1, 1, 8, 8)) == 4 * 9 * 36 + 144 * 10
    task = Digits(budget={"generations": 1, "candidates": 1, "steps": 40}, fractions=FRACTIONS).prepare()
    genome = Genome("mlp", {"depth": 1, "width": 16, "activation": "relu", "dropout": 0.0},
                    {"optimizer": "adam", "lr": 3e-3, "steps": 40, "batch_size": 32, "weight_decay": 0.0})
    (s,) = Serial().train([Candidate("1.0", genome, None, 0)], task.view("execution", "train"), TaskShape(64, 10, 40, "cpu"))
    assert s.train["compute"] == 3 * 40 * 32 * (64 * 16 + 16 * 10)


def test_a_speedrun_ranks_every_successor_at_the_target_above_every_one_below_then_by_less_compute():
    task = Task("t", {}, Budget(1, 1, 1), 2, 2, target=0.9)
    assert task.score(0.95, 10, 1e6) == -6.0 and task.score(0.9, 10, 1e5) == -5.0
    assert task.score(0.89, 10, 1) == pytest.approx(0.89 - 100)
    assert task.score(0.89, 10, 1) < task.score(0.9, 10, 1e12)
    with pytest.raises(ValueError, match="a speedrun needs each successor's training compute"):
        task.score(0.95, 10)
    assert Task("t", {}, task.budget, 2, 2).score(0.9, 10) == 0.9  # no target: the proxy, as before
    for bad, message in (({"target": 1.5}, "objective.target must be null or an accuracy strictly between 0 and 1"),
                         ({"target": 0.9, "compute_penalty": 0.1}, "cannot both be set")):
        with pytest.raises(ValueError, match=message):
            Digits(budget={"generations": 1, "candidates": 1, "steps": 10}, fractions=FRACTIONS, **bad)


def one_hot_model(shift: int) -> torch.nn.Module:
    """Maps item i of the identity features to class i + shift (mod 4)."""
    model = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.roll(torch.eye(4), shift, 0))
    return model


def test_the_gate_vetoes_a_nominee_whose_audit_accuracy_misses_the_target():
    audit = Split(torch.eye(4).repeat(2, 1), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    data = DataView({"audit": audit}, ["audit"], "gate")
    genome = Genome("mlp", {}, {})

    def scored(model) -> Scored:
        return Scored(Successor("n" * 16, Candidate("1.0", genome, None, 0), model, {}), Scores(0.95), 0.95)

    right, wrong = scored(one_hot_model(0)), scored(one_hot_model(1))
    passed = Probes(target=0.9).decide([], right, wrong, data, [])
    assert passed.action == "promote" and passed.probes["check/audit_accuracy"] == 1.0
    assert passed.reasons[0] == "correctness check: audit accuracy 1.0000 reaches the target 0.9"
    failed = Probes(target=0.9).decide([], wrong, right, data, [])
    assert failed.action == "veto" and failed.probes["check/audit_accuracy"] == 0.0
    assert failed.reasons[:2] == ("vetoed on the correctness check (audit accuracy below the target)",
                                  "correctness check: audit accuracy 0.0000 below the target 0.9")
    assert "check/audit_accuracy" not in Probes().decide([], wrong, right, data, []).probes  # no target, no check
    for bad in (0, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="gate.target must be null or an accuracy in"):
            Probes(target=bad)


def test_the_speedrun_experiment_counts_compute_and_reports_its_speed_up(tmp_path):
    state, _ = run_loop(tmp_path, "experiment=speedrun", "objective.budget.generations=3",
                        "objective.budget.candidates=4", "objective.budget.steps=150")
    events = ledger_events(tmp_path)
    started = next(e for e in events if e.event == "run_started")
    assert started.detail["speedrun"] == {"target": 0.9}
    trained = [e for e in events if e.event == "trained"]
    assert trained and all(e.metrics["compute"] > 0 for e in trained)
    for e in (e for e in events if e.event == "evaluated"):
        compute = next(t.metrics["compute"] for t in trained if t.successor == e.successor)
        expected = -math.log10(compute) if e.metrics["proxy"] >= 0.9 else e.metrics["proxy"] - 100
        assert e.metrics["score"] == pytest.approx(expected, abs=1e-6)
    sr = speedrun(parse(events))
    assert sr is not None and sr.target == 0.9 and sr.incumbents[0][0] == 0
    text = write_report(tmp_path).read_text()
    assert "## Speedrun" in text and "| generation 0 |" in text and "**Faster nominees a check stopped:" in text
    assert state.completed >= 1
