"""`loop.state`: what a run knows, folded from its ledger; here, pauses and the people who decide them."""

from __future__ import annotations

from pathlib import Path

from loop.ledger import Ledger, read
from loop.state import fold

INCUMBENT, NOMINEE = "a" * 16, "b" * 16


def paused_run(path: Path, holds_nominee: bool = True) -> Ledger:
    """Generation 0, then generation 1 paused on NOMINEE (held for a person's decision or not)."""
    path.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(path / "ledger.jsonl")
    ledger.append("run_started", 0)
    ledger.append("evaluated", 0, successor=INCUMBENT, metrics={"proxy": 0.5, "truth": 0.5, "score": 0.5})
    ledger.append("promoted", 0, successor=INCUMBENT)
    ledger.append("generation_finished", 0, successor=INCUMBENT, detail={"decision": "baseline"})
    ledger.append("evaluated", 1, successor=NOMINEE, metrics={"proxy": 0.9, "truth": 0.6, "score": 0.9})
    ledger.append("paused", 1, successor=NOMINEE, parent=INCUMBENT, reasons=["tripwire: capability jump"],
                  detail={"if_approved": ["probes ok"]} if holds_nominee else None)
    ledger.append("generation_finished", 1, successor=INCUMBENT, detail={"decision": "paused"})
    return ledger


def approve(ledger: Ledger, decision: str) -> None:
    ledger.append("approved", 1, successor=NOMINEE, detail={"by": "Ana", "reason": "ok", "decision": decision,
                                                            "nominee": NOMINEE})


def test_a_pause_waits_for_a_person_and_names_what_it_holds(tmp_path):
    paused_run(tmp_path)
    state = fold(read(tmp_path / "ledger.jsonl"))
    assert state.paused and state.pause.successor == NOMINEE and state.decided is None
    assert state.incumbent == INCUMBENT and state.next_generation == 2


def test_an_approval_is_a_decision_to_carry_out_until_the_generation_is_finished_again(tmp_path):
    ledger = paused_run(tmp_path)
    approve(ledger, "promote")
    state = fold(read(tmp_path / "ledger.jsonl"))
    assert not state.paused and state.decided.approve and state.decided.by == "Ana"
    assert state.decided.paused.successor == NOMINEE and state.incumbent == INCUMBENT

    # the resumed run is killed after its `promoted`, before the second finish: still to carry out
    ledger.append("resumed", 2)
    ledger.append("promoted", 1, successor=NOMINEE, parent=INCUMBENT)
    state = fold(read(tmp_path / "ledger.jsonl"))
    assert state.decided is not None and state.pending == 1 and state.incumbent == INCUMBENT

    ledger.append("resumed", 2)  # drops the cut-off `promoted`; the decision is carried out again
    ledger.append("promoted", 1, successor=NOMINEE, parent=INCUMBENT, reasons=["human: approved by Ana: ok"])
    ledger.append("generation_finished", 1, successor=NOMINEE, detail={"decision": "promoted"})
    state = fold(read(tmp_path / "ledger.jsonl"))
    assert state.decided is None and not state.paused and state.incumbent == NOMINEE
    assert state.history[-1].decision == "promoted" and state.history[-1].reasons == ("human: approved by Ana: ok",)
    assert state.completed == 1 and state.pending == 0


def test_a_rejection_vetoes_and_a_pause_that_holds_nothing_only_lifts(tmp_path):
    ledger = paused_run(tmp_path / "reject")
    approve(ledger, "veto")
    assert fold(read(tmp_path / "reject" / "ledger.jsonl")).decided.approve is False

    ledger = paused_run(tmp_path / "lift", holds_nominee=False)
    approve(ledger, "promote")  # even if asked: the pause holds no nominee the checks passed
    state = fold(read(tmp_path / "lift" / "ledger.jsonl"))
    assert state.decided is None and not state.paused and state.incumbent == INCUMBENT


def test_a_generation_without_a_gate_decision_reads_as_none(tmp_path):
    from loop.state import past_of

    ledger = Ledger(tmp_path / "ledger.jsonl")
    proposed = ledger.append("proposed", 1, detail={"candidate": "1.0", "genome": {"family": "mlp", "arch": {},
                                                                                  "recipe": {}, "generator": {}}})
    past = past_of(1, [proposed])
    assert (past.decision, past.reasons, dict(past.gate), past.proxy) == ("none", (), {}, (None,))


def test_the_gate_readings_the_generator_sees_leave_out_missing_values(tmp_path):
    from loop.state import past_of

    ledger = Ledger(tmp_path / "ledger.jsonl")
    readings = {"probe/calibration": 2.5, "probe/ood": float("nan")}
    vetoed = ledger.append("vetoed", 1, successor=NOMINEE, metrics=readings, reasons=["calibration regresses"])
    past = past_of(1, [vetoed])
    assert past.decision == "vetoed" and past.reasons == ("calibration regresses",)
    assert dict(past.gate) == {"probe/calibration": 2.5}  # NaN is written as null, and left out


def test_a_paused_generation_without_its_paused_line_still_reads_as_paused(tmp_path):
    """A hand-written or older ledger may lack the gate's own `paused` line: the pause is the
    generation's finish, so a person can still be told about it and decide."""
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append("run_started", 0)
    ledger.append("generation_finished", 0, successor=INCUMBENT, detail={"decision": "baseline"})
    finished = ledger.append("generation_finished", 1, successor=INCUMBENT, detail={"decision": "paused"})
    state = fold(read(tmp_path / "ledger.jsonl"))
    assert state.paused and state.pause == finished and state.decided is None


def test_an_answer_without_a_name_is_still_carried_out(tmp_path):
    ledger = paused_run(tmp_path)
    ledger.append("approved", 1, successor=NOMINEE, detail={"decision": "promote", "nominee": NOMINEE})
    decided = fold(read(tmp_path / "ledger.jsonl")).decided
    assert (decided.approve, decided.by, decided.reason) == (True, "?", "")


def test_the_generator_is_told_which_proposal_the_decision_was_about(tmp_path):
    from loop.state import past_of

    ledger = Ledger(tmp_path / "ledger.jsonl")
    genome = {"family": "mlp", "arch": {}, "recipe": {}, "generator": {}}
    events = [ledger.append("proposed", 1, detail={"candidate": f"1.{i}", "genome": genome}) for i in range(3)]
    events += [ledger.append("evaluated", 1, successor=sid, metrics={"proxy": p}, detail={"candidate": f"1.{i}"})
               for i, (sid, p) in enumerate([("c" * 16, 0.4), (NOMINEE, 0.9), ("d" * 16, 0.5)])]
    for decision in ("promoted", "vetoed", "paused"):
        past = past_of(1, [*events, ledger.append(decision, 1, successor=NOMINEE, parent=INCUMBENT)])
        assert past.nominee == 1 and past.proxy == (0.4, 0.9, 0.5)
    assert past_of(1, [*events, ledger.append("not_nominated", 1, parent=INCUMBENT)]).nominee is None
