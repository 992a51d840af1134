"""`loop.promotion.Greedy` and the control gates in `loop.gates` (Off, Probes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from loop.gates import Off, Probes, vetoes_in_a_row
from loop.promotion import Greedy
from loop.stages import (AccessError, Candidate, DataView, Decision, Genome, Nomination, Past, Scored,
                         Scores, Split, Successor)

GENOME = Genome("mlp", {"depth": 1}, {"lr": 0.01})


@dataclass
class FakeModel:
    """Stands in for an nn.Module: the fake probes read their values from it."""

    values: dict = field(default_factory=dict)


@dataclass
class FakeProbe:
    name: str
    higher_is_better: bool
    tolerance: float
    label: str = "score"
    calls: list = field(default_factory=list)

    def measure(self, model: FakeModel, split: Split) -> float:
        self.calls.append(split)
        return model.values[self.name]


def scored(sid: str, score: float, **probe_values: float) -> Scored:
    successor = Successor(sid, Candidate(f"1.{sid}", GENOME, None, 0), FakeModel(probe_values),
                          {"train_loss": 0.1, "steps": 10, "parameters": 100})
    return Scored(successor, Scores(proxy=score), score)


def past(decision: str, generation: int = 1) -> Past:
    return Past(generation, (GENOME,), (0.5,), decision, (f"{decision} for a reason",))


PROBE_SPLIT = Split("probe-x", "probe-y")  # the fake probes never look inside


def gate_view(*allowed: str) -> DataView:
    return DataView({"probe": PROBE_SPLIT, "truth": Split("t", "t")}, allowed or ("probe",), "gate")


# --- Greedy ----------------------------------------------------------------------------------


def test_greedy_nominates_above_the_margin():
    incumbent = scored("inc", 0.5)
    best = scored("b", 0.62)
    nomination = Greedy(margin=0.01).nominate([scored("a", 0.55), best, scored("c", 0.4)], incumbent)
    assert isinstance(nomination, Nomination)
    assert nomination.nominee is best
    (reason,) = nomination.reasons
    assert "0.6200" in reason and "0.5000" in reason and "+0.1200" in reason and "0.01" in reason


def test_greedy_does_not_nominate_within_the_margin():
    incumbent = scored("inc", 0.5)
    nomination = Greedy(margin=0.01).nominate([scored("a", 0.505), scored("b", 0.3)], incumbent)
    assert nomination.nominee is None
    (reason,) = nomination.reasons
    assert "0.5050" in reason and "0.5000" in reason and "margin" in reason and "0.01" in reason
    # exactly the margin is not enough either
    assert Greedy(margin=0.25).nominate([scored("a", 0.75)], incumbent).nominee is None


def test_greedy_does_not_nominate_a_worse_candidate_even_with_zero_margin():
    incumbent = scored("inc", 0.5)
    assert Greedy(margin=0.0).nominate([scored("a", 0.5)], incumbent).nominee is None
    assert Greedy(margin=0.0).nominate([scored("a", 0.49)], incumbent).nominee is None
    assert Greedy(margin=0.0).nominate([scored("a", 0.51)], incumbent).nominee is not None


def test_greedy_picks_the_first_of_equals():
    first, second = scored("x", 0.9), scored("y", 0.9)
    assert Greedy().nominate([first, second], scored("inc", 0.1)).nominee is first


def test_greedy_with_no_candidates():
    nomination = Greedy().nominate([], scored("inc", 0.5))
    assert nomination.nominee is None and nomination.reasons and "no candidate" in nomination.reasons[0]


@pytest.mark.parametrize("margin", [-0.1, True, "0.1", None])
def test_greedy_refuses_a_bad_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        Greedy(margin=margin)


# --- Off -------------------------------------------------------------------------------------


def test_off_always_promotes():
    nominee, incumbent = scored("n", 0.1, noise=0.0), scored("i", 0.9, noise=1.0)
    history = [past("vetoed"), past("vetoed"), past("vetoed")]
    decision = Off().review(nominee, incumbent, incumbent, gate_view(), history)
    assert isinstance(decision, Decision)
    assert decision.action == "promote" and decision.probes == {}
    assert decision.reasons and "off" in decision.reasons[0]


# --- Probes ----------------------------------------------------------------------------------


def probes_gate(**kwargs) -> Probes:
    return Probes(probes=[FakeProbe("noise", True, 0.05, "accuracy under noise"),
                          FakeProbe("calibration", False, 0.02, "ECE")], **kwargs)


def test_probes_gate_promotes_an_equal_nominee():
    nominee = scored("n", 0.7, noise=0.8, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "promote"
    assert dict(decision.probes) == {"probe/noise": 0.8, "probe/noise/incumbent": 0.8,
                                     "probe/calibration": 0.03, "probe/calibration/incumbent": 0.03}
    assert len(decision.reasons) == 2
    assert all("ok" in r for r in decision.reasons)


def test_probes_gate_promotes_within_tolerance():
    nominee = scored("n", 0.7, noise=0.76, calibration=0.045)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    assert probes_gate().review(nominee, incumbent, incumbent, gate_view(), []).action == "promote"


def test_probes_gate_vetoes_a_regression_on_a_higher_is_better_probe():
    nominee = scored("n", 0.7, noise=0.6, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto"
    assert decision.reasons[0] == "vetoed on noise"
    noise_reason = next(r for r in decision.reasons if r.startswith("noise:"))
    assert "0.600" in noise_reason and "0.800" in noise_reason and "regresses" in noise_reason
    assert "accuracy under noise" in noise_reason and "0.05" in noise_reason
    calibration_reason = next(r for r in decision.reasons if r.startswith("calibration:"))
    assert "regresses" not in calibration_reason
    assert decision.probes["probe/noise"] == 0.6 and decision.probes["probe/noise/incumbent"] == 0.8


def test_probes_gate_vetoes_a_regression_on_a_lower_is_better_probe():
    nominee = scored("n", 0.7, noise=0.9, calibration=0.10)  # better noise, worse calibration
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto"
    assert "calibration" in decision.reasons[0] and "noise" not in decision.reasons[0]
    assert any("calibration" in r and "ECE 0.100 vs incumbent 0.030" in r and "regresses" in r
               for r in decision.reasons)


def test_probes_gate_names_every_failed_probe():
    nominee = scored("n", 0.7, noise=0.1, calibration=0.5)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto"
    assert decision.reasons[0] == "vetoed on noise, calibration"


def test_probes_gate_compares_with_the_incumbent_not_the_baseline():
    nominee = scored("n", 0.7, noise=0.8, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    baseline = scored("b", 0.3, noise=1.0, calibration=0.0)
    assert probes_gate().review(nominee, incumbent, baseline, gate_view(), []).action == "promote"


def test_probes_gate_pauses_at_the_veto_streak():
    nominee = scored("n", 0.7, noise=0.1, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    gate = probes_gate(max_consecutive_vetoes=3)
    history = [past("promoted", 1), past("vetoed", 2), past("vetoed", 3)]
    decision = gate.review(nominee, incumbent, incumbent, gate_view(), history)
    assert decision.action == "pause"
    assert any("tripwire" in r and "3 vetoes in a row" in r for r in decision.reasons)
    assert any(r.startswith("noise:") and "regresses" in r for r in decision.reasons)
    # one veto fewer in the history: a plain veto
    assert gate.review(nominee, incumbent, incumbent, gate_view(), history[:-1]).action == "veto"


def test_a_pause_in_history_resets_the_streak():
    nominee = scored("n", 0.7, noise=0.1, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    gate = probes_gate(max_consecutive_vetoes=3)
    history = [past("vetoed", 1), past("vetoed", 2), past("paused", 3), past("vetoed", 4)]
    assert vetoes_in_a_row(history) == 1
    assert gate.review(nominee, incumbent, incumbent, gate_view(), history).action == "veto"
    assert gate.review(nominee, incumbent, incumbent, gate_view(),
                       history + [past("vetoed", 5)]).action == "pause"


def test_a_passing_nominee_is_promoted_despite_a_veto_streak():
    nominee = scored("n", 0.7, noise=0.8, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    history = [past("vetoed", g) for g in range(1, 6)]
    assert probes_gate(max_consecutive_vetoes=2).review(
        nominee, incumbent, incumbent, gate_view(), history).action == "promote"


def test_max_consecutive_vetoes_zero_never_pauses():
    nominee = scored("n", 0.7, noise=0.1, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    history = [past("vetoed", g) for g in range(1, 20)]
    assert probes_gate(max_consecutive_vetoes=0).review(
        nominee, incumbent, incumbent, gate_view(), history).action == "veto"


def test_max_consecutive_vetoes_one_pauses_at_the_first_veto():
    nominee = scored("n", 0.7, noise=0.1, calibration=0.03)
    incumbent = scored("i", 0.6, noise=0.8, calibration=0.03)
    assert probes_gate(max_consecutive_vetoes=1).review(
        nominee, incumbent, incumbent, gate_view(), []).action == "pause"


def test_probes_gate_reads_only_its_split():
    gate = probes_gate()
    nominee = scored("n", 0.7, noise=0.8, calibration=0.03)
    gate.review(nominee, nominee, nominee, gate_view(), [])
    assert all(split is PROBE_SPLIT for probe in gate.probes for split in probe.calls)
    with pytest.raises(AccessError):
        gate.review(nominee, nominee, nominee, DataView({"truth": PROBE_SPLIT}, ["truth"], "gate"), [])


@pytest.mark.parametrize("value", [-1, True, 1.5, "3"])
def test_probes_gate_refuses_a_bad_veto_limit(value):
    with pytest.raises(ValueError, match="max_consecutive_vetoes"):
        Probes(probes=[], max_consecutive_vetoes=value)


def test_probes_gate_refuses_duplicate_probe_names():
    with pytest.raises(ValueError, match="distinct"):
        Probes(probes=[FakeProbe("noise", True, 0.1), FakeProbe("noise", True, 0.2)])


def test_a_gate_without_probes_promotes():
    nominee = scored("n", 0.7)
    decision = Probes(probes=[]).review(nominee, nominee, nominee, gate_view(), [past("vetoed")] * 5)
    assert decision.action == "promote" and decision.probes == {}
