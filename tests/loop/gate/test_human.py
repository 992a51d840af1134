"""`gate=human` (`loop.gate.gates.Human`): a person approves every promotion the probes pass, at a
terminal or through an approval file; unanswered, the loop pauses holding the nominee."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from loop.gate.gates import Human
from loop.stages import Decision
from test_gates import GOOD, LOSS, gate_view, probes_gate, scored, with_errors


def test_human_gate_follows_the_approval_file(tmp_path):
    model = dict(noise=GOOD, calibration=LOSS)
    nominee, incumbent = scored("n", 0.9, **model), scored("i", 0.8, **model)
    approvals = tmp_path / "approvals.json"
    gate = Human(checks=probes_gate(), approval_file=str(approvals), interactive=False)
    decision = gate.review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "pause" and "awaits a person's approval" in decision.reasons[-1]
    approvals.write_text('{"n": {"approve": false, "by": "Ada", "reason": "not convinced"}}')
    decision = gate.review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto" and decision.reasons[-1] == "human: vetoed by Ada: not convinced"
    approvals.write_text('{"n": {"approve": true, "by": "Ada", "reason": "looks fine"}}')
    assert gate.review(nominee, incumbent, incumbent, gate_view(), []).action == "promote"


def test_human_gate_never_overrules_a_probe_veto(tmp_path):
    approvals = tmp_path / "approvals.json"
    approvals.write_text('{"n": {"approve": true, "by": "Ada", "reason": "ship it"}}')
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 60), calibration=LOSS)
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    gate = Human(checks=probes_gate(), approval_file=str(approvals), interactive=False)
    assert gate.review(nominee, incumbent, incumbent, gate_view(), []).action == "veto"


@dataclass
class Checks:
    """Stands in for the probe gate behind gate=human: a fixed decision, and whether it was asked."""

    action: str = "promote"
    asked: list = field(default_factory=list)

    def review(self, nominee, incumbent, baseline, data, history) -> Decision:
        self.asked.append(nominee.id)
        return Decision(self.action, {"probe/noise": 0.5}, ("noise/acc: 0.900 vs incumbent 0.900: ok",))


def human(**settings) -> Human:
    return Human(checks=Checks(), **settings)


def review(gate: Human) -> Decision:
    return gate.review(scored("n", 0.9), scored("i", 0.8), scored("i", 0.8), gate_view(), [])


def test_unanswered_the_human_gate_pauses_holding_the_nominee_with_the_checks_reasons():
    decision = review(human(interactive=False))  # no terminal, no approval file
    assert decision.action == "pause" and decision.probes == {"probe/noise": 0.5}
    assert decision.reasons == ("noise/acc: 0.900 vs incumbent 0.900: ok",
                                "human: promotion of n awaits a person's approval; the loop pauses")
    assert decision.if_approved == ("noise/acc: 0.900 vs incumbent 0.900: ok",)  # what approving promotes with


@pytest.mark.parametrize("reply,promotes", [("y", True), ("yes", True), (" Y ", True), ("YES\n", True),
                                            ("n", False), ("", False), ("yep", False)])
def test_at_a_terminal_the_human_gate_asks_and_takes_yes_only(monkeypatch, reply, promotes):
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or reply)
    monkeypatch.setattr("getpass.getuser", lambda: "ada")
    decision = review(human(interactive=True))
    assert prompts == ["promote n (proxy 0.9000) over i (proxy 0.8000)? [y/N] "]
    assert decision.action == ("promote" if promotes else "veto") and decision.probes == {"probe/noise": 0.5}
    verdict = "approved" if promotes else "vetoed"
    assert decision.reasons[-1] == f"human: {verdict} by ada: answered at the terminal"


@pytest.mark.parametrize("tty", [True, False])
def test_the_human_gate_asks_when_stdin_is_a_terminal_unless_told(monkeypatch, tty):
    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"isatty": lambda self: tty})())
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert review(human()).action == ("promote" if tty else "pause")
    assert review(human(interactive=False)).action == "pause"  # told: never asks


def test_an_approval_entry_without_names_is_still_a_decision(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text('{"n": {"approve": true}}')
    decision = review(human(interactive=False, approval_file=str(answers)))
    assert decision.action == "promote" and decision.reasons[-1] == "human: approved by ?: "


class Clock:
    """time.monotonic and time.sleep for the gate's polling: sleeping moves the clock."""

    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_unattended_the_gate_polls_the_file_until_its_timeout(tmp_path, monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr("loop.gate.gates.time", clock)
    answers = tmp_path / "answers.json"
    answers.write_text('{"n": {"approve": tru')  # half written by a person: read again, no crash
    gate = human(interactive=False, approval_file=str(answers), timeout_s=1.0, poll_s=0.25)
    assert review(gate).action == "pause"
    assert clock.sleeps == [0.25] * 4  # four polls and a last look at the deadline
    assert capsys.readouterr().out == f"human: waiting up to 1 s for an answer on nominee n in {answers}\n"

    clock.sleeps.clear()
    answers.write_text('["not", "a", "mapping"]')
    assert review(human(interactive=False, approval_file=str(answers), timeout_s=0.0, poll_s=0.25)).action == "pause"
    assert clock.sleeps == [] and capsys.readouterr().out == ""  # no wait, and nothing said about one


def test_a_probe_veto_reaches_no_person(monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("a vetoed nominee was put to a person"))
    gate = Human(checks=Checks(action="veto"), interactive=True)
    decision = review(gate)
    assert decision.action == "veto" and decision.reasons == ("noise/acc: 0.900 vs incumbent 0.900: ok",)
