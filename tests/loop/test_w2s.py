"""Weak-to-strong: PGR, agreement and error imitation, and the loop that measures them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import compose_config, ledger_events, run_loop

from loop.stages import Split
from loop.w2s import MIN_GAP, w2s_metrics


class Fixed(nn.Module):
    """A 'model' that answers fixed labels for the 10 truth items (its input is the item index)."""

    def __init__(self, answers: list[int]):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # predict.logits reads a parameter's device
        self.answers = torch.tensor(answers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.answers[x.long().flatten()], 3).float() * self.scale


TRUTH = Split(torch.arange(10).float().view(-1, 1), torch.tensor([0] * 10))


def test_pgr_agreement_and_error_imitation_by_hand():
    weak = Fixed([0] * 6 + [1] * 4)  # 0.6, wrong on items 6-9
    student = Fixed([0] * 8 + [1] * 2)  # 0.8: right on 6, 7; copies the teacher's errors on 8, 9
    ceiling = Fixed([0] * 10)  # 1.0
    metrics, note = w2s_metrics(weak, student, ceiling, TRUTH)
    assert metrics["w2s/weak"] == pytest.approx(0.6) and metrics["w2s/ceiling"] == pytest.approx(1.0)
    assert metrics["w2s/pgr"] == pytest.approx((0.8 - 0.6) / (1.0 - 0.6))
    assert metrics["w2s/agreement"] == pytest.approx(0.8)  # agrees everywhere but items 6, 7
    assert metrics["w2s/error_imitation"] == pytest.approx(0.5)  # 2 of the teacher's 4 errors copied
    assert "PGR 0.50" in note


def test_pgr_is_undefined_when_the_ceiling_barely_beats_the_teacher():
    weak = Fixed([0] * 9 + [1])
    metrics, note = w2s_metrics(weak, Fixed([0] * 10), Fixed([0] * 9 + [2]), TRUTH)
    assert metrics["w2s/ceiling"] - metrics["w2s/weak"] < MIN_GAP and "w2s/pgr" not in metrics
    assert "undefined" in note and "w2s/agreement" in metrics


def test_the_experiment_composes_with_every_student_taught_by_its_teacher():
    cfg = compose_config("experiment=weak_to_strong")
    assert cfg.weak_to_strong is True
    assert cfg.successor.space.recipe.distill.low == cfg.successor.space.recipe.distill.high == 1.0


def test_a_weak_to_strong_loop_writes_pgr_for_every_generation(tmp_path):
    run_loop(tmp_path / "run", "weak_to_strong=true", "successor.init.recipe.distill=1.0",
             "successor.space.recipe.distill.low=1.0", "gate=off")
    finished = [e for e in ledger_events(tmp_path / "run") if e.event == "generation_finished"]
    assert not any(k.startswith("w2s/") for k in finished[0].metrics)  # generation 0: no teacher
    for e in finished[1:]:
        assert {"w2s/weak", "w2s/student", "w2s/ceiling", "w2s/agreement", "w2s/error_imitation"} <= set(e.metrics)
        assert any(r.startswith("weak-to-strong:") for r in e.reasons)
        assert ("w2s/pgr" in e.metrics) == (e.metrics["w2s/ceiling"] - e.metrics["w2s/weak"] >= MIN_GAP)
        if "w2s/pgr" in e.metrics:
            m = e.metrics
            # the ledger keeps 6 decimals, so the ratio recomputed from it carries their rounding
            assert m["w2s/pgr"] == pytest.approx((m["w2s/student"] - m["w2s/weak"]) / (m["w2s/ceiling"] - m["w2s/weak"]),
                                                 rel=1e-3, abs=1e-4)
    # the teacher of generation g is the incumbent going into it: its truth is the ledger's
    incumbent_truth = {e.generation: e.metrics["incumbent/truth"] for e in finished}
    for e in finished[1:]:
        assert e.metrics["w2s/weak"] == pytest.approx(incumbent_truth[e.generation - 1], abs=1e-5)


def test_weak_to_strong_must_be_a_boolean(tmp_path):
    from loop.tools.cli import ConfigError, build_stages

    with pytest.raises(ConfigError, match="weak_to_strong must be true or false"):
        build_stages(compose_config("weak_to_strong=sometimes"))


def test_a_generation_without_students_says_so_and_measures_nothing(tmp_path):
    """weak_to_strong=true, but every candidate learns from gold labels only (distill 0): no
    student, so no PGR and no ceiling twin; each generation's reasons say why."""
    run_loop(tmp_path / "run", "weak_to_strong=true", "successor.space.recipe.distill.high=0.0", "gate=off")
    finished = [e for e in ledger_events(tmp_path / "run") if e.event == "generation_finished"][1:]
    assert finished
    for e in finished:
        assert not any(k.startswith("w2s/") for k in e.metrics)
        assert "weak-to-strong: no candidate of this generation learned from the teacher" in e.reasons


W2S_INHERITING = ("weak_to_strong=true", "successor.init.recipe.distill=1.0", "successor.space.recipe.distill.low=1.0",
                  "successor.init.recipe.inherit=parent", "successor.space.recipe.inherit.choices=[parent]",
                  "gate=off", "execution=serial", "objective.budget.generations=1")


def test_the_ceiling_twin_is_the_best_student_on_gold_labels_from_the_same_start(tmp_path, monkeypatch):
    """What execution is handed for the twin, recorded as it is called: the student's genome with
    gold labels, its seed, and the teacher's weights to start from where the student inherits them."""
    from loop.execution.serial import Serial
    from loop.w2s import ceiling_genome

    handed = []
    original = Serial.train

    def recording(self, candidates, data, task):
        handed.extend(candidates)
        return original(self, candidates, data, task)
    monkeypatch.setattr(Serial, "train", recording)
    run_loop(tmp_path / "run", *W2S_INHERITING)
    twins = [c for c in handed if c.key.endswith(".ceiling")]
    assert [c.key for c in twins] == ["1.ceiling"]
    students = {c.key: c for c in handed if c.key.startswith("1.") and c is not twins[0]}
    events = ledger_events(tmp_path / "run")
    finished = next(e for e in events if e.event == "generation_finished" and e.generation == 1)
    student_id = next(r for r in finished.reasons if r.startswith("weak-to-strong")).split("student ")[-1]
    key = next(e.detail["candidate"] for e in events if e.event == "trained" and e.successor == student_id)
    student, twin = students[key], twins[0]
    assert twin.genome == ceiling_genome(student.genome) and twin.seed == student.seed
    teacher = next(e.successor for e in events if e.event == "promoted" and e.generation == 0)
    assert twin.parent == student.parent == teacher
    assert twin.parent_weights is not None and twin.parent_genome == student.parent_genome


def test_a_ceiling_twin_that_cannot_be_trained_is_named_and_measures_nothing(tmp_path, monkeypatch):
    from loop.execution.serial import Serial
    from loop.stages import Quarantined

    original = Serial.train

    def failing_twin(self, candidates, data, task):
        if candidates[0].key.endswith(".ceiling"):
            return [Quarantined(candidates[0], "diverged (planted)")]
        return original(self, candidates, data, task)
    monkeypatch.setattr(Serial, "train", failing_twin)
    run_loop(tmp_path / "run", *W2S_INHERITING)
    finished = next(e for e in ledger_events(tmp_path / "run") if e.event == "generation_finished" and e.generation == 1)
    assert not any(k.startswith("w2s/") for k in finished.metrics)
    assert any(r.startswith("weak-to-strong: the ceiling twin of ") and r.endswith("could not be trained: diverged (planted)")
               for r in finished.reasons)
