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
    for bad in (0, 1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="gate.target must be null or an accuracy strictly between 0 and 1"):
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


def test_the_speedrun_readout_from_a_ledger_speed_ups_faster_nominees_stopped_and_corners_cut(tmp_path):
    """A hand-written speedrun: B reaches the proxy target but not the truth's (a corner cut), C is faster
    and vetoed, D is faster, paused, then approved and promoted (not 'stopped')."""
    from loop.ledger import Ledger, read

    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append("run_started", 0, detail={"seed": 0, "speedrun": {"target": 0.9}, "plugins": {}})

    def candidate(g: int, sid: str, proxy: float, truth: float, compute: float, parent: str | None) -> str:
        sid = sid * 16
        ledger.append("trained", g, successor=sid, parent=parent, metrics={"steps": 10, "parameters": 1, "compute": compute})
        ledger.append("evaluated", g, successor=sid, parent=parent, metrics={"proxy": proxy, "truth": truth})
        return sid

    def finish(g: int, after: str, decision: str) -> None:
        ledger.append("generation_finished", g, successor=after, detail={"decision": decision})

    a = candidate(0, "a", 0.60, 0.60, 100, None)
    ledger.append("promoted", 0, successor=a)
    finish(0, a, "baseline")
    b = candidate(1, "b", 0.92, 0.85, 200, a)
    ledger.append("promoted", 1, successor=b, parent=a)
    finish(1, b, "promoted")
    c = candidate(2, "c", 0.91, 0.91, 50, b)
    ledger.append("vetoed", 2, successor=c, parent=b, reasons=["vetoed on the correctness check"])
    finish(2, b, "vetoed")
    d = candidate(3, "d", 0.95, 0.93, 80, b)
    ledger.append("paused", 3, successor=d, parent=b, reasons=["tripwire"], detail={"if_approved": ["ok"]})
    finish(3, b, "paused")
    ledger.append("approved", 3, successor=d, parent=b, detail={"by": "x", "reason": "y", "decision": "promote"})
    ledger.append("resumed", 4)
    ledger.append("promoted", 3, successor=d, parent=b)
    finish(3, d, "promoted")
    sr = speedrun(parse(read(tmp_path / "ledger.jsonl")))
    assert sr.first_at_target == b and sr.speedup(a) == 100 / 80 and sr.speedup(b) == 200 / 80
    assert [e.successor for e in sr.faster_stopped] == [c]
    assert sr.corners == [(1, b, 0.85)]
    text = write_report(tmp_path).read_text()
    assert "| generation 0 | `aaaaaaaa` | 100 | 1.25x |" in text and "| first incumbent at the target | `bbbbbbbb` | 200 | 2.50x |" in text
    assert "**Faster nominees a check stopped: 1**" in text and "- generation 1: `bbbbbbbb`, truth 0.8500" in text


@pytest.mark.parametrize("gate", ["probes", "strict", "human", "growing", "off"])
def test_every_gate_takes_the_speedruns_correctness_check_or_refuses_it_by_name(gate):
    """experiment=speedrun sets gate.target: the probe gates hold it, the gates that wrap them pass it to
    their checks, and gate=off, which runs none, refuses it with what to do instead."""
    from conftest import compose_config
    from loop.config import ConfigError
    from loop.tools.cli import build_stages

    cfg = compose_config("tracker=none", "experiment=speedrun", f"gate={gate}")
    if gate == "off":
        with pytest.raises(ConfigError, match=r"gate=off runs no checks, so it cannot hold the correctness check "
                                              r"gate.target=0.9 .* or drop the check with ~gate.target"):
            build_stages(cfg)
        assert build_stages(compose_config("tracker=none", "experiment=speedrun", "gate=off", "~gate.target"))
        return
    built = build_stages(cfg).gate
    assert getattr(built, "checks", built).target == 0.9
