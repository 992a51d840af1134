"""Real loops at a tiny budget, checked through what they wrote."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import TINY, compose_config, ledger_events, run_loop
from loop.ledger import FIELDS
from loop.stages import AccessError
from loop.state import settle
from loop.tools.verify import verify


def test_run_writes_the_contracted_run_directory(finished_run):
    events = ledger_events(finished_run)
    kinds = [e.event for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    for kind in ("proposed", "trained", "evaluated", "promoted", "generation_finished"):
        assert kind in kinds
    assert {e.generation for e in events if e.event == "generation_finished"} == {0, 1, 2, 3}
    # every line carries the contract fields; evaluated events carry proxy and truth on one scale
    for line in (finished_run / "ledger.jsonl").read_text().splitlines():
        assert set(FIELDS) <= set(json.loads(line))
    for e in (e for e in events if e.event == "evaluated"):
        assert 0.0 <= e.metrics["proxy"] <= 1.0 and 0.0 <= e.metrics["truth"] <= 1.0
        assert (finished_run / "successors" / f"{e.successor}.safetensors").is_file()
        card = json.loads((finished_run / "successors" / f"{e.successor}.json").read_text())
        assert card["id"] == e.successor and card["metrics"]["proxy"] == e.metrics["proxy"]
    gated = [e for e in events if e.event in ("promoted", "vetoed") and e.generation > 0]
    assert gated, "the tiny run reached the gate at least once"
    for e in gated:
        probes = {"calibration", "robustness", "ood", "shortcut", "consistency", "fingerprint"}
        assert {f"probe/{p}" for p in probes} <= set(e.metrics), "the gate records every probe it ran"
    assert "## Where the time goes" in (finished_run / "report.md").read_text()
    assert (finished_run / "plots" / "scores.png").read_bytes().startswith(b"\x89PNG")
    assert verify(finished_run)[0] == []


def test_generator_is_handed_the_incumbent_and_proxies_never_truth(tmp_path, monkeypatch):
    """What `propose` receives, recorded as it is called: the incumbent's genome, and one `Past` per
    finished generation whose scores are the logged proxies (never the hidden truth), whose
    decision is the generation's, and whose gate readings name no truth."""
    from loop.generator.mutation import SelfAdaptive
    from loop.stages import Genome

    calls, propose = [], SelfAdaptive.propose
    monkeypatch.setattr(SelfAdaptive, "propose", lambda self, parent, history, n, rng: calls.append(
        (parent, list(history))) or propose(self, parent, history, n, rng))
    run_dir = tmp_path / "run"
    run_loop(run_dir, "generator=self_adaptive")
    events = ledger_events(run_dir)
    finished = {e.generation: e for e in events if e.event == "generation_finished"}
    cards = {sid: json.loads((run_dir / "successors" / f"{sid}.json").read_text()) for sid in
             {e.successor for e in finished.values()}}
    assert len(calls) == len(finished) - 1 == 3  # generations 1..3
    for e in (e for e in events if e.event in ("proposed", "trained") and e.generation > 0):
        assert e.parent == finished[e.generation - 1].successor  # built from the incumbent, not another
    differs = 0
    for g, (parent, history) in enumerate(calls, start=1):
        assert parent == Genome.from_dict(cards[finished[g - 1].successor]["genome"])
        assert [p.generation for p in history] == list(range(1, g))
        for past in history:
            mine = [e for e in events if e.generation == past.generation]
            keys = [e.detail["candidate"] for e in mine if e.event == "proposed"]
            scores = {e.detail["candidate"]: e.metrics for e in mine if e.event == "evaluated"}
            assert past.proxy == tuple(scores[k]["proxy"] if k in scores else None for k in keys)
            differs += sum(scores[k]["proxy"] != scores[k]["truth"] for k in keys if k in scores)
            assert past.decision == finished[past.generation].detail["decision"]
            assert not any("truth" in key or "regret" in key or key.startswith("gap/") for key in past.gate)
            assert not any("truth" in reason for reason in past.reasons)
    assert differs > 0  # proxies and truths differ, so handing over the truth would show


def test_each_stage_is_handed_exactly_its_own_splits(tmp_path, monkeypatch):
    """What execution, the evaluator, the truth evaluator and the gate are handed, recorded as they
    are called: the very splits hashed into run_started, under their own names, and no other."""
    from evaluators.accuracy import Accuracy
    from loop.execution.batched import Batched
    from loop.gate.gates import Probes
    from loop.objective.tasks import split_hash

    seen = []

    def spy(cls, method):
        original = getattr(cls, method)

        def recording(self, *args):
            data = next(a for a in args if type(a).__name__ == "DataView")
            seen.append((data.stage, {name: split_hash(split) for name, split in data._splits.items()}))
            return original(self, *args)
        monkeypatch.setattr(cls, method, recording)

    spy(Batched, "train"), spy(Accuracy, "evaluate"), spy(Probes, "review")  # the held-out audit runs a Probes
    run_loop(tmp_path / "run", "execution=batched", "evaluator=accuracy", "gate=probes")
    recorded = ledger_events(tmp_path / "run")[0].detail["hashes"]
    gate = {"probe", "audit", "proxy"}
    expected = {"execution": {"train"}, "evaluator": {"proxy"}, "truth": {"truth"}, "gate": gate, "audit": gate}
    assert {stage for stage, _ in seen} == set(expected)
    for stage, handed in seen:
        assert set(handed) == expected[stage], stage
        assert all(digest == recorded[f"data/{name}"] for name, digest in handed.items()), stage


def decisions_aside(run_dir) -> list[dict]:
    """The ledger without the events that record how a person's decision arrived (the pause, the
    approval, the resume, the paused generation's first finish) and without times and timings. The
    held-out audit's events come last, in order, without the gate's verdict (`paused by the gate`
    or `promoted by the gate`): the same audit either way, written before or after the pause."""
    kept, audits = [], []
    for line in (run_dir / "ledger.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["event"] == "audited":
            audits.append((r["generation"], r["successor"], r["metrics"], r["reasons"][0].split("; ", 1)[1],
                           r["reasons"][1:]))
        if r["event"] in ("paused", "approved", "resumed", "audited") \
                or r.get("detail", {}).get("decision") == "paused":
            continue
        r.get("detail", {}).pop("seconds", None)
        kept.append({k: v for k, v in r.items() if k not in ("seq", "time", "prev", "hash")})
    return kept + audits


def test_approving_through_the_cli_ends_as_approving_through_an_approval_file(tmp_path):
    from loop.tools.cli import approve_main

    answers = tmp_path / "answers.json"  # absent while the first run pauses: every promotion waits
    human = ["gate=human", f"gate.approval_file={answers}", "gate.interactive=false"]
    by_cli = tmp_path / "cli"
    state, _ = run_loop(by_cli, *human)
    approved = []
    while state.paused:
        approved.append(state.pause.successor)
        approve_main([str(by_cli), "--by", "Ana", "--reason", "checked"])
        state, _ = run_loop(by_cli, *human, resume=True)
    assert len(approved) >= 2 and state.finished
    answers.write_text(json.dumps({sid: {"approve": True, "by": "Ana", "reason": "checked"} for sid in approved}))
    by_file = tmp_path / "file"
    state, _ = run_loop(by_file, *human)
    assert state.finished
    assert decisions_aside(by_cli) == decisions_aside(by_file)


def test_a_rejected_nominee_is_vetoed_and_its_generation_finished_from_the_incumbent(tmp_path):
    from loop.tools.cli import approve_main

    run_dir = tmp_path / "run"
    human = ["gate=human", "gate.interactive=false"]
    state, _ = run_loop(run_dir, *human)
    pause = state.pause
    approve_main([str(run_dir), "--by", "Ana", "--reason", "too good", "--reject"])
    run_loop(run_dir, *human, resume=True)
    events = ledger_events(run_dir)
    vetoed = next(e for e in events if e.event == "vetoed" and e.generation == pause.generation)
    assert (vetoed.successor, vetoed.parent) == (pause.successor, pause.parent)
    assert vetoed.metrics == pause.metrics and vetoed.reasons == (*pause.detail["if_approved"],
                                                                 "human: vetoed by Ana: too good")
    first, second = [e for e in events if e.event == "generation_finished" and e.generation == pause.generation]
    assert second.successor == pause.parent and second.detail["decision"] == "vetoed"
    assert {k: second.metrics[k] for k in ("trained", "quarantined", "best/proxy", "best/truth")} == \
        {k: first.metrics[k] for k in ("trained", "quarantined", "best/proxy", "best/truth")}
    assert second.metrics["gap/selection"] == first.metrics["gap/selection"]  # measured for the same nominee


def without_time(events):
    """Everything but wall-clock readings: `time`, and the stage timings of generation_finished."""
    return [(e.seq, e.generation, e.event, e.successor, e.parent, dict(e.metrics), e.reasons,
             {k: v for k, v in e.detail.items() if k != "seconds"}) for e in events]


def test_same_config_and_seed_give_the_same_ledger(tmp_path, finished_run):
    run_loop(tmp_path / "again")
    first, second = ledger_events(finished_run), ledger_events(tmp_path / "again")
    assert without_time(first) == without_time(second)


def test_another_seed_gives_another_run(tmp_path, finished_run):
    run_loop(tmp_path / "other", "seed=1")
    ids = lambda run: [e.successor for e in ledger_events(run) if e.event == "trained"]  # noqa: E731
    assert ids(finished_run) != ids(tmp_path / "other")


def test_gate_off_promotes_every_nominee_and_evaluator_swaps(tmp_path):
    run_loop(tmp_path / "r", "gate=off", "evaluator=likelihood")
    events = ledger_events(tmp_path / "r")
    nominated = [e.successor for e in events if e.event == "nominated"]
    promoted = [e.successor for e in events if e.event == "promoted" and e.generation > 0]
    assert nominated == promoted and not any(e.event == "vetoed" for e in events)
    evaluated = [e for e in events if e.event == "evaluated"]
    assert all(e.metrics["proxy"] != e.metrics["proxy/accuracy"] for e in evaluated)
    started = events[0].detail["plugins"]
    assert started["gate"] == "loop.gate.gates.Off" and started["evaluator"] == "evaluators.accuracy.Likelihood"


def test_an_evaluator_reaching_for_truth_fails_loudly(tmp_path):
    with pytest.raises(AccessError, match="evaluator stage may not see the 'truth' split"):
        run_loop(tmp_path / "r", "evaluator.split=truth")


def test_a_broken_candidate_is_quarantined_and_the_loop_goes_on(tmp_path, monkeypatch):
    import loop.execution.serial

    real = loop.execution.serial.train_candidate

    def flaky(candidate, *args, **kwargs):  # the second candidate of every generation blows up
        if candidate.key.endswith(".1"):
            raise FloatingPointError("simulated blow-up")
        return real(candidate, *args, **kwargs)

    monkeypatch.setattr(loop.execution.serial, "train_candidate", flaky)
    state, _ = run_loop(tmp_path / "r", "execution=serial")
    events = ledger_events(tmp_path / "r")
    quarantined = [e for e in events if e.event == "quarantined"]
    assert [e.detail["candidate"] for e in quarantined] == ["1.1", "2.1", "3.1"]
    assert all("FloatingPointError: simulated blow-up" in e.reasons[0] for e in quarantined)
    assert state.finished and events[-1].event == "run_finished"
    assert verify(tmp_path / "r")[0] == []


def test_tripwire_pauses_and_approval_lifts_it(tmp_path):
    from loop.tools.cli import approve_main

    run_dir = tmp_path / "r"
    pause = ("gate.tripwires.capability_jump=0.01",)  # any nominee's proxy gain trips the wire
    state, lines = run_loop(run_dir, *pause)
    assert state.paused and not state.finished
    assert [e.event for e in ledger_events(run_dir)[-3:]] == ["paused", "audited", "generation_finished"]
    assert any("rsi-loop-approve" in line for line in lines)
    paused = ledger_events(run_dir)[-3]
    assert any(r.startswith("tripwire: capability jump") for r in paused.reasons)
    approve_main([str(run_dir), "--by", "Ada", "--reason", "jumps were expected in this test"])
    events = ledger_events(run_dir)
    assert events[-1].event == "approved" and events[-1].detail["by"] == "Ada"
    state, _ = run_loop(run_dir, *pause, resume=True)
    kinds = [e.event for e in ledger_events(run_dir)]
    assert kinds.count("paused") == 2 and kinds.index("approved") < kinds.index("resumed")
    assert state.paused and state.completed == 2


def test_an_approved_generation_counts_the_candidates_it_quarantined(tmp_path, monkeypatch):
    """The generation a person approved is finished on resume from its ledger events, quarantines included."""
    import loop.execution.serial
    from loop.tools.cli import approve_main

    real = loop.execution.serial.train_candidate

    def flaky(candidate, *args, **kwargs):  # one candidate of every generation blows up
        if candidate.key.endswith(".1"):
            raise FloatingPointError("simulated blow-up")
        return real(candidate, *args, **kwargs)

    monkeypatch.setattr(loop.execution.serial, "train_candidate", flaky)
    run_dir, pause = tmp_path / "r", ("execution=serial", "gate.tripwires.capability_jump=0.01")
    state, _ = run_loop(run_dir, *pause)
    g = state.pause.generation if state.pause else None
    assert state.paused and g is not None
    approve_main([str(run_dir), "--by", "Ada", "--reason", "expected"])
    run_loop(run_dir, *pause, resume=True)
    events = ledger_events(run_dir)
    assert [e.detail["candidate"] for e in events if e.event == "quarantined" and e.generation == g] == [f"{g}.1"]
    finished = [e for e in events if e.event == "generation_finished" and e.generation == g]
    evaluated = [e for e in events if e.event == "evaluated" and e.generation == g]
    assert [e.detail["decision"] for e in finished] == ["paused", "promoted"]  # the second from the ledger
    assert [(e.metrics["quarantined"], e.metrics["trained"]) for e in finished] == [(1, len(evaluated))] * 2


def test_wandb_tracker_writes_an_offline_run_inside_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the suite runs wandb disabled; this test needs it on
    run_dir = tmp_path / "r"
    run_loop(run_dir, "tracker=wandb", "tracker.mode=offline", "objective.budget.generations=1")
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb")), "an offline run `wandb sync` can upload"


def test_wandb_tracker_disabled_writes_nothing(tmp_path):
    run_loop(tmp_path / "r", "tracker=wandb", "objective.budget.generations=1")  # WANDB_MODE=disabled
    assert not (tmp_path / "r" / "wandb").exists()


def test_a_candidate_that_tampers_with_the_judge_pauses_the_loop(tmp_path, monkeypatch):
    import gc
    import warnings

    import loop.execution.serial
    import loop.gate.gates

    real = loop.execution.serial.train_candidate

    def tampering(candidate, *args, **kwargs):  # generation 2's first candidate loosens the gate
        if candidate.key == "2.0":
            with warnings.catch_warnings():  # walking every object touches deprecated torch aliases
                warnings.simplefilter("ignore")
                gates = [o for o in gc.get_objects() if isinstance(o, loop.gate.gates.Probes)]
            for gate in gates:
                gate.alpha = 0.999
        return real(candidate, *args, **kwargs)

    monkeypatch.setattr(loop.execution.serial, "train_candidate", tampering)
    state, _ = run_loop(tmp_path / "r", "execution=serial")
    events = ledger_events(tmp_path / "r")
    paused = [e for e in events if e.event == "paused"]
    assert state.paused and len(paused) == 1 and paused[0].generation == 2
    assert paused[0].reasons[0] == "integrity: thresholds changed while generation 2 was trained and scored"
    assert not any(e.event in ("nominated", "promoted") and e.generation == 2 for e in events)


def test_tripwires_are_pre_registered_in_the_ledger(finished_run):
    started = ledger_events(finished_run)[0]
    assert started.detail["tripwires"] == {"Tripwires.audit_gap": 0.1, "Tripwires.audit_gap_generations": 3,
                                           "Tripwires.capability_jump": 0.5, "Tripwires.vetoes_in_a_row": 3}
    assert len(started.detail["hashes"]["thresholds"]) == 64


def test_human_gate_unattended_pauses_for_a_person(tmp_path):
    state, _ = run_loop(tmp_path / "r", "gate=human")
    events = ledger_events(tmp_path / "r")
    paused = [e for e in events if e.event == "paused"]
    assert state.paused and len(paused) == 1
    assert paused[0].reasons[-1].endswith("awaits a person's approval; the loop pauses")


def test_every_generation_records_where_its_time_went(finished_run):
    for e in (e for e in ledger_events(finished_run) if e.event == "generation_finished"):
        seconds = e.detail["seconds"]
        assert {"execution", "evaluator", "truth", "checkpoints", "other", "total"} <= set(seconds)
        assert seconds["total"] == pytest.approx(sum(v for k, v in seconds.items() if k != "total"), abs=1e-3)
        if e.generation > 0:
            assert "generator" in seconds and "promotion" in seconds


def test_every_generation_measures_the_goodhart_gap(finished_run):
    events = ledger_events(finished_run)
    evaluated = {e.successor: e.metrics for e in events if e.event == "evaluated"}
    for e in (e for e in events if e.event == "generation_finished"):
        m, inc = e.metrics, evaluated[e.successor]
        assert m["gap/incumbent"] == pytest.approx(inc["proxy"] - inc["truth"], abs=1e-6)
        best_truth = max(v["truth"] for k, v in evaluated.items()
                         if any(x.successor == k and x.generation <= e.generation for x in events
                                if x.event == "evaluated"))
        assert m["truth/regret"] == pytest.approx(best_truth - inc["truth"], abs=1e-6)
        assert m["truth/regret"] >= 0
        if e.generation >= 1:
            assert -1.0 <= m["spearman/proxy_truth"] <= 1.0
    nominated = [e for e in events if e.event == "nominated"]
    finished = {e.generation: e for e in events if e.event == "generation_finished"}
    for n in nominated:
        assert "gap/selection" in finished[n.generation].metrics


def test_self_adaptive_generator_genes_are_inherited_through_promotion(tmp_path):
    """Each generation's children are what the generator makes from the promoted incumbent's genome,
    its own generator genes included: replaying `propose` with that genome (same seed, same
    history) gives them exactly, and replaying it with generation 0's generator genes does not."""
    import numpy as np

    from conftest import TINY, compose_config
    from loop.engine import derive_seed
    from loop.stages import Genome
    from loop.state import fold
    from loop.tools.cli import build_stages

    overrides = ["generator=self_adaptive", "gate=off"]
    run_loop(tmp_path / "r", *overrides)
    events = ledger_events(tmp_path / "r")
    generator = build_stages(compose_config(*TINY, *overrides)).generator
    seed, initial = events[0].detail["seed"], generator.space.initial.generator
    promoted = [e for e in events if e.event == "promoted" and e.generation > 0]
    assert promoted, "gate=off promotes every nominee"
    cards = {e.successor: e.detail["candidate"] for e in events if e.event == "trained"}
    proposed = {e.detail["candidate"]: Genome.from_dict(e.detail["genome"]) for e in events if e.event == "proposed"}
    for e in promoted[:-1]:  # the last promotion has no next generation
        g = e.generation + 1
        parent = proposed[cards[e.successor]]
        assert parent.generator != initial  # its generator genes moved away from generation 0's
        before = fold([x for x in events if x.seq <= next(f.seq for f in events if f.event == "generation_finished"
                                                           and f.generation == e.generation)])
        children = [genome for key, genome in proposed.items() if key.startswith(f"{g}.")]

        def replay(genome: Genome) -> list[Genome]:
            rng = np.random.default_rng(derive_seed(seed, g, "generator"))
            return generator.propose(genome, before.history, len(children), rng)

        assert replay(parent) == children
        assert replay(Genome(parent.family, parent.arch, parent.recipe, dict(initial))) != children


@pytest.mark.parametrize("fallbacks", [0, 2])
def test_after_a_veto_promotion_may_fall_back_to_the_next_best(tmp_path, fallbacks):
    run_dir = tmp_path / "run"
    run_loop(run_dir, "gate=off", "gate._target_=redteam.VetoFirstReview", "allowed_targets=[redteam]",
             f"promotion.fallbacks={fallbacks}", "promotion.margin=0.0")
    events = ledger_events(run_dir)
    for g in (1, 2, 3):
        here = [e for e in events if e.generation == g]
        nominated = [e for e in here if e.event == "nominated"]
        decisions = [e.event for e in here if e.event in ("vetoed", "promoted")]
        finished = next(e for e in here if e.event == "generation_finished")
        if not nominated:
            continue  # nothing beat the incumbent
        assert decisions[0] == "vetoed"
        if fallbacks == 0:
            assert decisions == ["vetoed"] and finished.detail["decision"] == "vetoed"
        elif len(nominated) > 1:  # the next best, a different successor, passes
            assert decisions == ["vetoed", "promoted"] and nominated[1].successor != nominated[0].successor
            assert "fallback 1 of 2" in nominated[1].reasons[-1]
            assert finished.detail["decision"] == "promoted" and finished.successor == nominated[1].successor
    fell_back = [e for e in events if e.event == "nominated" and "fallback" in e.reasons[-1]]
    assert bool(fell_back) == (fallbacks > 0)  # generation 1's weak baseline leaves a second candidate to pass
    from loop.tools.report import write_report

    timeline = write_report(run_dir).read_text().split("## Gate timeline")[1].split("##")[0]
    assert ("first vetoed:" in timeline) == (fallbacks > 0)  # the fallback's vetoed predecessor is shown


def test_a_ledger_cut_mid_generation_resumes_to_the_same_run(tmp_path, finished_run):
    """In process, what a SIGKILL leaves (tests/test_cli.py does it for real): the ledger ends inside
    generation 2. The resume drops that attempt, reruns the generation and ends as the uninterrupted run."""
    import shutil

    run_dir = tmp_path / "cut"
    shutil.copytree(finished_run, run_dir)
    lines = (run_dir / "ledger.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "trained"
               and json.loads(line)["generation"] == 2) + 1
    kept_of_generation_2 = sum(json.loads(line)["generation"] == 2 for line in lines[:cut])
    (run_dir / "ledger.jsonl").write_text("".join(lines[:cut]))
    state, _ = run_loop(run_dir, resume=True)
    events = ledger_events(run_dir)
    resumed = next(e for e in events if e.event == "resumed")
    assert resumed.detail == {"restarted_generation": 2, "discarded_events": kept_of_generation_2}
    assert settle(events).abandoned == kept_of_generation_2  # the report counts them apart, not twice
    assert [e.generation for e in events if e.event == "generation_finished"] == [0, 1, 2, 3]
    original = ledger_events(finished_run)
    assert state.finished and state.incumbent == original[-1].successor
    assert [(e.event, e.successor, dict(e.metrics)) for e in events if e.seq > resumed.seq] == \
        [(e.event, e.successor, dict(e.metrics)) for e in original if e.seq >= cut - kept_of_generation_2]
    assert verify(run_dir)[0] == []


def test_the_gate_records_the_audit_gap_as_proxy_minus_audit_accuracy(finished_run):
    """Recomputed from the checkpoint and the audit split, not read back from the gate."""
    import torch

    from conftest import TINY, compose_config
    from loop.checkpoints import Checkpoints
    from loop.stages import Genome, TaskShape
    from loop.tools.cli import build_stages

    stages = build_stages(compose_config(*TINY))
    task = stages.objective.prepare()
    shape = TaskShape.of(task, "cpu", family=stages.space.family, gate=stages.gate)
    audit, store = task.splits["audit"], Checkpoints(finished_run)
    events = ledger_events(finished_run)
    proxy = {e.successor: e.metrics["proxy"] for e in events if e.event == "evaluated"}
    gated = [e for e in events if e.event in ("promoted", "vetoed", "paused") and e.generation > 0]
    assert gated
    for e in gated:
        model = store.load_model(e.successor, Genome.from_dict(store.load_card(e.successor)["genome"]), shape)
        with torch.no_grad():
            accuracy = float((model.eval()(audit.x).argmax(1) == audit.y).float().mean())
        assert e.metrics["tripwire/audit_gap"] == pytest.approx(proxy[e.successor] - accuracy, abs=2e-6)


def test_the_ledger_records_what_it_was_told_and_the_tracker_each_generation(tmp_path, monkeypatch):
    """The run_started budget is the configured one, key for key; run_finished carries the final incumbent's
    proxy and truth and the baseline's truth as the evaluated events hold them; every trained and evaluated
    event names its candidate's parent; the tracker receives each generation's number with its metrics."""
    from loop.tracker.trackers import NoTracker

    logged: list[tuple[int, dict]] = []
    monkeypatch.setattr(NoTracker, "log", lambda self, g, metrics: logged.append((g, dict(metrics))))
    state, _ = run_loop(tmp_path, "objective.budget.generations=2", "objective.budget.candidates=2",
                        "objective.budget.steps=40", "gate=off")
    events = ledger_events(tmp_path)
    assert events[0].detail["budget"] == {"generations": 2, "candidates": 2, "steps": 40}
    evaluated = {e.successor: e.metrics for e in events if e.event == "evaluated"}
    finished = events[-1]
    assert finished.event == "run_finished" and finished.metrics == {
        "incumbent/proxy": evaluated[state.incumbent]["proxy"], "incumbent/truth": evaluated[state.incumbent]["truth"],
        "baseline/truth": evaluated[state.baseline]["truth"]}
    parents = {(e.generation, e.detail["candidate"]): e.parent for e in events if e.event == "proposed"}
    for e in (e for e in events if e.event in ("trained", "evaluated")):
        assert e.parent == parents[(e.generation, e.detail["candidate"])]
    assert any(e.parent is not None for e in events if e.event == "trained")
    generation_finished = [e for e in events if e.event == "generation_finished"]
    assert [g for g, _ in logged] == [e.generation for e in generation_finished] == [0, 1, 2]
    assert all(m["incumbent/truth"] == e.metrics["incumbent/truth"] for (_, m), e in zip(logged, generation_finished))


def test_a_successor_rebuilt_from_the_ledger_keeps_its_evaluators_metric_names_whole(tmp_path, monkeypatch):
    """`Engine.scored` (how a resumed run and promotion see a past successor) takes the evaluator's extra
    metrics back from the ledger's `proxy/<name>`: a name that itself holds a slash stays whole."""
    from evaluators.accuracy import Accuracy
    from loop.engine import Engine
    from loop.tools.cli import prepare

    evaluate = Accuracy.evaluate
    monkeypatch.setattr(Accuracy, "evaluate", lambda self, model, data: (lambda s: dataclasses.replace(
        s, metrics={**s.metrics, "per_class/3": 0.25, "a/b/c": 0.5}))(evaluate(self, model, data)))
    run_loop(tmp_path, "objective.budget.generations=1")
    cfg = compose_config(*TINY, "objective.budget.generations=1")
    stages, task, device, config = prepare(cfg)
    engine = Engine(tmp_path, stages, task, int(cfg.seed), device, config, say=lambda line: None)
    engine.events = ledger_events(tmp_path)
    evaluated = [e for e in engine.events if e.event == "evaluated"]
    assert evaluated
    for e in evaluated:
        rebuilt = engine.scored(e.successor)
        assert rebuilt.scores.proxy == e.metrics["proxy"] and rebuilt.score == e.metrics["score"]
        assert rebuilt.scores.metrics == {"nll": e.metrics["proxy/nll"], "ece": e.metrics["proxy/ece"],
                                          "per_class/3": 0.25, "a/b/c": 0.5}
