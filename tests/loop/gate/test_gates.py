"""`loop.promotion.greedy.Greedy` and the control gates in `loop.gate.gates` (Off, Probes; Human: test_human.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import pytest

from loop.gate.gates import Off, Probes, Tripwires, vetoes_in_a_row
from loop.promotion.greedy import Greedy
from loop.stages import (AccessError, Candidate, DataView, Decision, Genome, Nomination, Past, Readout,
                         Scored, Scores, Split, Successor)

GENOME = Genome("mlp", {"depth": 1}, {"lr": 0.01})


@dataclass
class FakeModel:
    """Stands in for an nn.Module: the fake probes read their values from it."""

    values: dict = field(default_factory=dict)


def mean_of_first_column(items: np.ndarray) -> float:
    return float(items[:, 0].mean())


@dataclass
class FakeProbe:
    """Reads per-item results from the fake model: 0/1 vectors for an accuracy probe, a column of
    per-item losses for a statistic probe."""

    name: str
    kind: str = "accuracy"
    tolerance: float = 0.05
    calls: list = field(default_factory=list)

    def measure(self, model: FakeModel, data: DataView, reference: FakeModel) -> list[Readout]:
        self.calls.append(data["probe"])
        items = np.asarray(model.values[self.name], dtype=float)
        if self.kind == "accuracy":
            return [Readout(f"{self.name}/acc", float(items.mean()), "accuracy", items, True,
                            self.tolerance, "accuracy")]
        items = items.reshape(-1, 1)
        return [Readout(f"{self.name}/loss", mean_of_first_column(items), "statistic", items, False,
                        self.tolerance, "loss", mean_of_first_column)]


def scored(sid: str, score: float, **probe_values: float) -> Scored:
    successor = Successor(sid, Candidate(f"1.{sid}", GENOME, None, 0), FakeModel(probe_values),
                          {"train_loss": 0.1, "steps": 10, "parameters": 100})
    return Scored(successor, Scores(proxy=score), score)


def past(decision: str, generation: int = 1, **gate: float) -> Past:
    return Past(generation, (GENOME,), (0.5,), decision, (f"{decision} for a reason",), gate)


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
    nominee, incumbent = scored("n", 0.1), scored("i", 0.9)
    history = [past("vetoed"), past("vetoed"), past("vetoed")]
    decision = Off().review(nominee, incumbent, incumbent, gate_view(), history)
    assert isinstance(decision, Decision)
    assert decision.action == "promote" and decision.probes == {}
    assert decision.reasons and "off" in decision.reasons[0]


# --- Probes ----------------------------------------------------------------------------------

N = 300
GOOD = np.ones(N)  # right on every item
RNG = np.random.default_rng(0)
NOISY = (RNG.random(N) > 0.1).astype(float)  # ~90% right


def with_errors(base: np.ndarray, wrong: int, seed: int = 1) -> np.ndarray:
    """`base` with `wrong` more items answered wrongly (chosen among its right answers)."""
    out = base.copy()
    right = np.flatnonzero(out == 1)
    out[np.random.default_rng(seed).choice(right, wrong, replace=False)] = 0
    return out


NO_WIRES = Tripwires(audit_gap=0, capability_jump=0, vetoes_in_a_row=0)


def probes_gate(**kwargs) -> Probes:
    kwargs.setdefault("tripwires", NO_WIRES)
    kwargs.setdefault("bootstrap_rounds", 300)
    return Probes(probes=[FakeProbe("noise"), FakeProbe("calibration", "statistic", 0.02)], **kwargs)


LOSS = RNG.normal(0.3, 0.1, N)


def test_probes_gate_promotes_an_equal_nominee():
    model = dict(noise=NOISY, calibration=LOSS)
    decision = probes_gate().review(scored("n", 0.9, **model), scored("i", 0.8, **model),
                                    scored("b", 0.5, **model), gate_view(), [])
    assert decision.action == "promote"
    assert decision.probes["probe/noise/acc"] == decision.probes["probe/noise/acc/incumbent"]
    assert {"probe/noise/acc/p_incumbent", "probe/calibration/loss/baseline"} <= set(decision.probes)
    assert any(r.startswith("noise/acc:") and r.endswith("ok") for r in decision.reasons)


def test_a_drop_within_tolerance_is_not_vetoed():
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 6), calibration=LOSS)  # 2% worse, tolerance 5%
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    assert probes_gate().review(nominee, incumbent, incumbent, gate_view(), []).action == "promote"


def test_an_accuracy_regression_beyond_tolerance_is_vetoed_and_named():
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 60), calibration=LOSS)  # 20% worse
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto"
    assert decision.reasons[0].startswith("vetoed on noise/acc vs incumbent")
    assert not any("calibration" in r and "regresses" in r for r in decision.reasons)
    assert decision.probes["probe/noise/acc/p_incumbent"] < 0.001


def test_a_statistic_regression_is_vetoed_by_the_paired_bootstrap():
    nominee = scored("n", 0.9, noise=GOOD, calibration=LOSS + 0.1)  # worse by 0.1, tolerance 0.02
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    decision = probes_gate().review(nominee, incumbent, incumbent, gate_view(), [])
    assert decision.action == "veto" and "calibration/loss vs incumbent" in decision.reasons[0]


def test_small_drops_that_add_up_are_caught_against_the_baseline():
    baseline = scored("b", 0.5, noise=GOOD, calibration=LOSS)
    incumbent = scored("i", 0.8, noise=with_errors(GOOD, 12), calibration=LOSS)  # 4% below the baseline
    nominee = scored("n", 0.9, noise=with_errors(with_errors(GOOD, 12), 12, seed=2), calibration=LOSS)
    decision = probes_gate(cumulative_factor=1.0).review(nominee, incumbent, baseline, gate_view(), [])
    assert decision.action == "veto"  # 4% more is within tolerance, 8% below the baseline is not
    assert decision.reasons[0].startswith("vetoed on noise/acc vs baseline (")
    assert "vs incumbent" not in decision.reasons[0]


def test_holm_keeps_honest_noise_from_vetoing():
    # nominee and incumbent differ on a few items both ways: no regression beyond tolerance
    a, b = with_errors(GOOD, 15, seed=3), with_errors(GOOD, 15, seed=4)
    decision = probes_gate().review(scored("n", 0.9, noise=a, calibration=LOSS),
                                    scored("i", 0.8, noise=b, calibration=LOSS),
                                    scored("b", 0.5, noise=b, calibration=LOSS), gate_view(), [])
    assert decision.action == "promote"


def test_vetoes_in_a_row_pause_the_loop():
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 60), calibration=LOSS)
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    gate = probes_gate(tripwires=Tripwires(audit_gap=0, capability_jump=0, vetoes_in_a_row=3))
    assert gate.review(nominee, incumbent, incumbent, gate_view(), [past("vetoed")]).action == "veto"
    decision = gate.review(nominee, incumbent, incumbent, gate_view(), [past("vetoed"), past("vetoed")])
    assert decision.action == "pause" and any("3 vetoes in a row" in r for r in decision.reasons)
    # a pause (lifted by a person) ends the streak
    assert gate.review(nominee, incumbent, incumbent, gate_view(),
                       [past("vetoed"), past("vetoed"), past("paused")]).action == "veto"


def test_a_capability_jump_pauses_even_a_passing_nominee():
    model = dict(noise=GOOD, calibration=LOSS)
    gate = probes_gate(tripwires=Tripwires(audit_gap=0, capability_jump=0.2, vetoes_in_a_row=0))
    decision = gate.review(scored("n", 0.95, **model), scored("i", 0.7, **model), scored("b", 0.5, **model),
                           gate_view(), [])
    assert decision.action == "pause" and any("capability jump +0.250" in r for r in decision.reasons)


def test_the_audit_gap_wire_needs_n_generations_in_a_row():
    wires = Tripwires(audit_gap=0.1, audit_gap_generations=3, capability_jump=0, vetoes_in_a_row=0)
    wide = {"tripwire/audit_gap": 0.2}
    assert wires.check("promote", 0.0, 0.2, [past("promoted", **wide)]) == []
    tripped = wires.check("promote", 0.0, 0.2, [past("promoted", **wide), past("none"), past("vetoed", **wide)])
    assert tripped == ["tripwire: proxy-vs-audit gap above 0.1 for 3 reviewed generations (0.200, 0.200, 0.200)"]
    assert wires.check("promote", 0.0, 0.05, [past("promoted", **wide), past("vetoed", **wide)]) == []
    narrow = {"tripwire/audit_gap": 0.05}
    older_narrow = [past("promoted", **narrow), past("promoted", **{"tripwire/audit_gap": 0.3}), past("vetoed", **wide)]
    assert wires.check("promote", 0.0, 0.25, older_narrow) == [  # only the last 3 count, this one included
        "tripwire: proxy-vs-audit gap above 0.1 for 3 reviewed generations (0.300, 0.200, 0.250)"]
    one = Tripwires(audit_gap=0.1, audit_gap_generations=1, capability_jump=0, vetoes_in_a_row=0)
    assert one.check("promote", 0.0, 0.2, [past("promoted", **narrow)]) == [
        "tripwire: proxy-vs-audit gap above 0.1 for 1 reviewed generations (0.200)"]


def test_probes_gate_reads_only_the_gate_splits():
    probe = FakeProbe("noise")
    gate = Probes(probes=[probe], tripwires=NO_WIRES)
    model = dict(noise=GOOD)
    gate.review(scored("n", 0.9, **model), scored("i", 0.8, **model), scored("b", 0.5, **model), gate_view(), [])
    assert probe.calls and all(c is PROBE_SPLIT for c in probe.calls)
    with pytest.raises(AccessError):
        gate.review(scored("n2", 0.9, **model), scored("i2", 0.8, **model), scored("b2", 0.5, **model),
                    DataView({"truth": Split("t", "t")}, ("truth",), "gate"), [])


@pytest.mark.parametrize("bad,message", [
    (dict(alpha=0), "gate.alpha must be in (0, 1), got 0"),
    (dict(alpha=1), "gate.alpha must be in (0, 1), got 1"),
    (dict(alpha=1.5), "gate.alpha must be in (0, 1), got 1.5"),
    (dict(tolerance_scale=0), "gate.tolerance_scale must be > 0, got 0"),
    (dict(cumulative_factor=-1.0), "gate.cumulative_factor must be > 0, got -1.0"),
    (dict(tripwires={"vetoes_in_a_row": -1}), "gate.tripwires.vetoes_in_a_row must be a number >= 0, got -1"),
])
def test_probes_gate_refuses_bad_settings(bad, message):
    with pytest.raises(ValueError) as err:
        Probes(probes=[FakeProbe("noise")], **bad)
    assert str(err.value) == message


def test_tolerance_scale_tightens_every_tolerance():
    """A 6% accuracy drop (18 of 300 items) is not shown beyond a 5% tolerance; halved (gate=strict),
    it is beyond 2.5% (p = 0.002)."""
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 18), calibration=LOSS)
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    assert probes_gate().review(nominee, incumbent, incumbent, gate_view(), []).action == "promote"
    strict = probes_gate(tolerance_scale=0.5).review(nominee, incumbent, incumbent, gate_view(), [])
    assert strict.action == "veto" and "noise/acc: accuracy 0.940 vs incumbent 1.000 (tolerance 0.025" in \
        " ".join(strict.reasons)


def test_the_gate_seed_fixes_the_bootstrap_resamples():
    nominee = scored("n", 0.9, noise=GOOD, calibration=LOSS + 0.02)  # right at the tolerance: p in the middle
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    p = {seed: probes_gate(seed=seed).review(nominee, incumbent, incumbent, gate_view(), [])
         .probes["probe/calibration/loss/p_incumbent"] for seed in (7, 7, 8)}
    again = probes_gate(seed=7).review(nominee, incumbent, incumbent, gate_view(), [])
    assert again.probes["probe/calibration/loss/p_incumbent"] == p[7] != p[8]


def test_probes_gate_refuses_duplicate_probe_names():
    with pytest.raises(ValueError, match="distinct"):
        Probes(probes=[FakeProbe("noise"), FakeProbe("noise")])


def test_vetoes_in_a_row_counts_only_the_tail():
    assert vetoes_in_a_row([past("vetoed"), past("promoted"), past("vetoed"), past("vetoed")]) == 2
    assert vetoes_in_a_row([]) == 0


def test_alpha_sets_how_sure_a_veto_must_be():
    """The same borderline regression: vetoed at alpha 0.05, promoted when alpha asks for more
    certainty than its p-value gives (Holm over the 4 tests of a review)."""
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 30), calibration=LOSS)  # 10% worse, tolerance 5%
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    loose = probes_gate(alpha=0.05).review(nominee, incumbent, incumbent, gate_view(), [])
    p = loose.probes["probe/noise/acc/p_incumbent"]
    assert loose.action == "veto" and 1e-9 < p < 0.05 / 4
    strict = probes_gate(alpha=p * 2).review(nominee, incumbent, incumbent, gate_view(), [])  # p > alpha / 4
    assert strict.action == "promote"


def test_bootstrap_rounds_set_the_p_value_resolution():
    nominee = scored("n", 0.9, noise=GOOD, calibration=LOSS + 0.1)  # regresses in every resample
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    for rounds in (50, 300):
        decision = probes_gate(bootstrap_rounds=rounds).review(nominee, incumbent, incumbent, gate_view(), [])
        assert decision.probes["probe/calibration/loss/p_incumbent"] == pytest.approx(1 / (rounds + 1), abs=1e-6)


def test_the_off_gate_promotes_and_says_no_probe_ran():
    decision = Off().review(scored("n", 0.9), scored("i", 0.8), scored("i", 0.8), gate_view(), [])
    assert decision == Decision("promote", {}, ("gate is off: no probes were run",))


@dataclass
class Picky:
    """A probe that cannot read some inputs; `brief` words its error as the shipped probes do."""

    name: str
    brief_words: str | None = None

    def check_task(self, shape) -> None:
        err = ValueError(f"{self.name} needs images, a long story")
        if self.brief_words:
            err.brief = lambda: self.brief_words
        raise err


@pytest.mark.parametrize("inputs,objective,hint", [
    ("tokens", "sequence", "use gate=tokens, which holds the probes that read token inputs"),
    ("features", "", "leave those probes out of gate.probes or set them as suggested"),
])
def test_probes_that_cannot_read_the_task_are_named_in_one_error(inputs, objective, hint):
    from loop.stages import TaskShape

    shape = TaskShape(3 if inputs == "tokens" else 8, 4, 10, "cpu", inputs=inputs, vocab=5 if inputs == "tokens" else 0,
                      seq_len=3 if inputs == "tokens" else 0, objective=objective)
    gate = Probes(probes=[Picky("ood", "ood: reads images only"), Picky("shift"), FakeProbe("noise")])
    with pytest.raises(ValueError) as err:
        gate.check_task(shape)
    assert str(err.value) == (f"gate: 2 of its 3 probes cannot run on objective={objective or '?'}, which gives "
                              f"{shape.describe()}: ood: reads images only; shift needs images, a long story. {hint}")


def test_each_probe_records_its_worst_regression_in_tolerances_and_a_plain_veto_names_no_secret_test():
    """`probe/<name>` is the largest of its tests' regressions over their tolerances (here the one against
    the incumbent, 0.1 / 0.05 = 2, not the improvement on a weaker baseline); a veto with no secret test
    names only what fired."""
    baseline = scored("b", 0.5, noise=with_errors(GOOD, 60), calibration=LOSS)
    incumbent = scored("i", 0.8, noise=GOOD, calibration=LOSS)
    nominee = scored("n", 0.9, noise=with_errors(GOOD, 30), calibration=LOSS)
    decision = probes_gate().review(nominee, incumbent, baseline, gate_view(), [])
    assert decision.probes["probe/noise"] == pytest.approx(2.0)
    assert decision.action == "veto" and decision.reasons[0].startswith("vetoed on noise/acc vs incumbent (p=")
    assert "secret" not in decision.reasons[0] and ", " not in decision.reasons[0]


@pytest.mark.parametrize("rounds", [0, -1, 2.5, True])
def test_bootstrap_rounds_must_be_a_whole_number_of_at_least_one(rounds):
    from loop.gate.paired import bootstrap_regression

    with pytest.raises(ValueError, match=rf"^gate.bootstrap_rounds must be a whole number >= 1, got {rounds!r}$"):
        Probes(bootstrap_rounds=rounds)
    with pytest.raises(ValueError, match="a paired bootstrap needs a whole number of rounds >= 1"):
        bootstrap_regression(mean_of_first_column, LOSS.reshape(-1, 1), LOSS.reshape(-1, 1), 0.0, False, rounds=rounds)
