"""The held-out audit (`loop.gate.audit.Audit`, `audit=held_out`): probe families the gate never
consults, run on every reviewed nominee for the ledger and the report only."""

from __future__ import annotations

import pytest
import torch

import redteam
from conftest import compose_config, ledger_events, run_loop
from evaluators.probes.held_out import ConfidentErrors, Occlusion, WorstClass, occlude, worst_class
from loop.config import ConfigError
from loop.gate.audit import Audit
from loop.state import fold
from loop.stages import Candidate, Scored, Scores, Successor, TaskShape
from loop.tools.cli import build_stages
from loop.tools.verify import verify


@pytest.fixture(scope="module")
def lab():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    task = build_stages(compose_config("tracker=none")).objective.prepare()
    models = [redteam.honest(task.splits["train"], 1000 + seed) for seed in range(2)]
    yield task, models
    torch.set_num_threads(before)


def scored(model, sid: str) -> Scored:
    successor = Successor(sid, Candidate("1.0", redteam.GOOD, None, 0), model, {"parameters": 1})
    return Scored(successor, Scores(0.9), 0.9)


def test_occlusion_blanks_one_patch_per_image_at_the_same_places_for_every_call():
    x = torch.ones(5, 64)
    blanked = occlude(x, 3, seed=0)
    assert (blanked == 0).sum(1).tolist() == [9] * 5
    assert torch.equal(blanked, occlude(x, 3, seed=0)) and not torch.equal(blanked, occlude(x, 3, seed=1))
    image = blanked[0].reshape(8, 8)
    rows, cols = torch.nonzero(image == 0, as_tuple=True)
    assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2  # one square, not scattered


def test_worst_class_is_the_lowest_per_class_mean_ignoring_absent_classes():
    items = torch.tensor([[1, 0], [1, 0], [0, 2], [1, 2], [1, 2], [1, 2]], dtype=torch.float64).numpy()
    assert worst_class(items) == 0.75  # class 0: 1.0, class 1: absent, class 2: 3/4


def test_a_model_that_sinks_one_class_regresses_on_the_audit_and_the_reasons_name_the_probe(lab):
    task, (base, other) = lab
    audit = Audit([Occlusion(), WorstClass(), ConfidentErrors()])
    view = task.view("audit", "probe", "audit", "proxy")
    metrics, reasons = audit.review(scored(redteam.sinks_class(base), "n"), scored(base, "i"), scored(base, "b"),
                                    view, "promote")
    assert metrics["audit/regressed"] == 1.0 and metrics["audit/worst_class/accuracy"] < 0.1
    assert reasons[0].startswith("promoted by the gate; regresses on the held-out audit: worst_class/accuracy vs")
    assert [r.split(":")[0] for r in reasons[1:]] == [  # what failed (vs incumbent and baseline), then what held
        "worst_class/accuracy", "worst_class/accuracy", "confident_errors/not_sure_and_wrong",
        "confident_errors/not_sure_and_wrong", "occlusion/accuracy"]  # a lost class is answered wrongly and surely
    assert all(r.endswith(": regresses") for r in reasons[1:5]) and reasons[5].endswith(": ok")
    assert "(tolerance 0.1, p=" in reasons[1] and "(tolerance 0.2, p=" in reasons[2]  # the probe's own, 2x vs baseline
    assert {k for k in metrics if not k.startswith("audit/")} == set() and "audit/worst_class/accuracy/p_incumbent" in metrics
    _, paused = audit.review(scored(redteam.sinks_class(base), "n3"), scored(base, "i"), scored(base, "b"), view, "pause")
    assert paused[0].startswith("paused by the gate; regresses on the held-out audit: ")
    metrics, reasons = audit.review(scored(other, "n2"), scored(base, "i"), scored(base, "b"), view, "veto")
    assert metrics["audit/regressed"] == 0.0 and reasons[0] == "vetoed by the gate; passes the held-out audit"
    assert all(r.endswith(": ok") for r in reasons[1:]) and len(reasons) == 4  # one line per metric


def test_the_audits_seed_sets_its_bootstrap(lab):
    task, (base, other) = lab
    view = task.view("audit", "probe", "audit", "proxy")
    p = [Audit([WorstClass()], seed=seed).review(scored(other, "n"), scored(base, "i"), scored(base, "b"), view,
                                                 "promote")[0]["audit/worst_class/accuracy/p_incumbent"]
         for seed in (0, 0, 1)]
    assert p[0] == p[1] != p[2]


class Plain:
    """A probe with no `check_task` (it reads any input) or one that refuses with a plain ValueError."""

    def __init__(self, name: str, refuse: bool = False):
        self.name = name
        if refuse:
            self.check_task = self.refuse

    def refuse(self, shape):
        raise ValueError("cannot read this")

    def measure(self, model, data, reference):
        return []


def test_the_audit_keeps_a_probe_without_check_task_and_names_a_plain_refusal():
    audit = Audit([Plain("any"), Plain("picky", refuse=True)])
    audit.prepare(TaskShape(64, 10, 1, "cpu"), [])
    assert audit.names == ["any"] and audit.dropped == ["picky: cannot read this"]


def test_the_audit_refuses_a_probe_the_gate_runs_and_leaves_out_one_that_cannot_read_the_task():
    shape = TaskShape(2, 31, 10, "cpu", "tokens", 31, 2, (), "modular_arithmetic")
    audit = Audit([Occlusion(), WorstClass()])
    audit.prepare(shape, ["calibration"])
    assert audit.names == ["worst_class"] and audit.dropped[0].startswith("occlusion blanks a 3x3 patch")
    with pytest.raises(ValueError) as one:
        Audit([WorstClass()]).prepare(shape, ["worst_class", "calibration"])
    assert str(one.value) == ("audit.probes: worst_class is also among the gate's probes; a held-out audit runs only "
                              "probe families the gate never consults (the gate runs calibration, worst_class). "
                              "Remove them from audit.probes or from gate.probes")
    with pytest.raises(ValueError, match=r"^audit.probes: confident_errors, worst_class are also among the gate's"):
        Audit([WorstClass(), ConfidentErrors()]).prepare(shape, ["worst_class", "confident_errors"])


def test_a_run_audits_every_nominee_the_gate_reviewed_and_the_generator_never_sees_it(tmp_path):
    run_dir = tmp_path / "r"
    state, _ = run_loop(run_dir)
    events = ledger_events(run_dir)
    reviewed = [(e.generation, e.successor) for e in events if e.event in ("promoted", "vetoed", "paused")
                and e.generation >= 1]
    audited = [e for e in events if e.event == "audited"]
    assert reviewed and [(e.generation, e.successor) for e in audited] == reviewed
    truth = {e.successor: e.metrics["truth"] for e in events if e.event == "evaluated"}
    for e in audited:
        assert e.metrics["truth/gain"] == pytest.approx(truth[e.successor] - truth[e.parent], abs=2e-6)
        assert {"audit/regressed", "audit/occlusion/accuracy", "audit/worst_class/accuracy"} <= set(e.metrics)
    seen = [text for past in fold(events).history for text in (*past.reasons, *past.gate)]
    assert seen and not any(text.startswith("audit/") or "held-out audit" in text for text in seen)
    started = events[0].detail
    assert started["held_out"]["audit"] == ["occlusion", "worst_class", "confident_errors"]
    assert started["plugins"]["audit"] == "loop.gate.audit.Audit" and "code/audit" in started["hashes"]
    assert verify(run_dir)[0] == []
    assert "## Held-out audit: what the gate let through" in (run_dir / "report.md").read_text()


def test_audit_off_writes_no_audit_and_a_shared_probe_stops_the_run_before_it_starts(tmp_path):
    run_loop(tmp_path / "off", "audit=off", "objective.budget.generations=1")
    assert not [e for e in ledger_events(tmp_path / "off") if e.event == "audited"]
    with pytest.raises(ConfigError, match="audit.probes: calibration is also among the gate's probes"):
        run_loop(tmp_path / "shared", "+audit.probes=[{_target_: evaluators.probes.Calibration}]")
    assert not (tmp_path / "shared" / "ledger.jsonl").exists()
