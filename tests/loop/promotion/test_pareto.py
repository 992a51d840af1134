"""`promotion=pareto`: a nominee on the front of the configured objectives, with the stated tie-break."""

from __future__ import annotations

import pytest

from conftest import ledger_events, run_loop
from loop.promotion.pareto import Pareto, front
from loop.stages import Candidate, Genome, Scored, Scores, Successor

GENOME = Genome("mlp", {"depth": 1, "width": 8}, {"steps": 100})


def scored(key: str, proxy: float, parameters: int, steps: int = 100, **metrics: float) -> Scored:
    successor = Successor(key * 4, Candidate(key, GENOME, None, 0), None,
                          {"parameters": parameters, "steps": steps, "train_loss": 0.1})
    return Scored(successor, Scores(proxy, metrics), proxy)


INCUMBENT = scored("i", 0.90, 1000)


def test_the_front_is_what_nothing_dominates():
    # [1, 0] is dominated by [1, 1] and [2, 0]; two equal points do not dominate each other
    assert front([[1, 1], [2, 0], [0, 2], [1, 0], [2, 0]]) == [0, 1, 2, 4]
    assert front([[1, 1], [2, 1], [0, 2]]) == [1, 2]


def test_a_cheaper_candidate_within_the_floor_is_nominated_over_a_costly_one_that_gains_less_than_the_margin():
    cheap = scored("a", 0.895, 500)  # gives up 0.005 proxy for half the compute
    costly = scored("b", 0.903, 4000)  # +0.003 proxy: below the margin, and 4x the compute
    nomination = Pareto().nominate([costly, cheap], INCUMBENT)
    assert nomination.nominee is cheap
    assert nomination.reasons == ("on the front of (proxy, compute) with 2 of 2 candidates; improves compute 50,000 "
                                  "against 100,000; the highest proxy of 1 eligible",)


def test_the_floor_the_margins_and_the_incumbent_bound_what_is_eligible():
    assert Pareto().nominate([scored("a", 0.85, 100)], INCUMBENT).nominee is None  # gives up 0.05 > floor 0.01
    assert Pareto(floor=0.1).nominate([scored("a", 0.85, 100)], INCUMBENT).nominee is not None
    assert Pareto().nominate([scored("a", 0.90, 950)], INCUMBENT).nominee is None  # 5% cheaper: below `relative`
    assert Pareto(relative=0.01).nominate([scored("a", 0.90, 950)], INCUMBENT).nominee is not None
    dominated = Pareto().nominate([scored("a", 0.89, 2000)], INCUMBENT)  # worse on both: the incumbent dominates
    assert dominated.nominee is None and dominated.reasons[0].startswith("of 0 candidates on the front of (proxy, "
                                                                         "compute), none improves")
    assert Pareto().nominate([], INCUMBENT).reasons == ("no candidate finished training",)


def test_ties_go_to_the_highest_proxy_then_the_lowest_compute_then_the_first_proposed():
    a, b, c = scored("a", 0.95, 900), scored("b", 0.97, 1200), scored("c", 0.97, 1200)
    assert Pareto().nominate([a, b, c], INCUMBENT).nominee is b
    d = scored("d", 0.97, 800)
    assert Pareto().nominate([a, b, d], INCUMBENT).nominee is d  # dominates b
    assert Pareto().nominate([c, b], INCUMBENT).nominee is c


def test_evaluator_metrics_are_objectives_with_a_direction():
    calibrated = scored("a", 0.90, 1000, nll=0.2)
    sharp = scored("b", 0.92, 1000, nll=0.5)
    incumbent = scored("i", 0.90, 1000, nll=0.4)
    lower_nll = Pareto(objectives=["proxy", "-metric/nll"])
    assert lower_nll.nominate([calibrated, sharp], incumbent).nominee is sharp  # both on the front: higher proxy
    assert Pareto(objectives=["proxy", "-metric/nll"], margin=0.05).nominate(
        [calibrated, sharp], incumbent).nominee is calibrated  # sharp's +0.02 is below the margin
    with pytest.raises(ValueError, match=r"names '-metric/ece', but the evaluator reports no metric 'ece'; "
                                         r"it reports: nll"):
        Pareto(objectives=["proxy", "-metric/ece"]).nominate([calibrated], incumbent)


@pytest.mark.parametrize("bad,message", [
    ({"objectives": ["proxy"]}, "must list at least two objectives"),
    ({"objectives": ["compute", "parameters"]}, "must include proxy"),
    ({"objectives": ["proxy", "speed"]}, "'speed' is not an objective; use proxy, compute"),
    ({"objectives": ["proxy", "metric/"]}, "'metric/' is not an objective"),
    ({"objectives": ["proxy", "compute", "compute"]}, "names an objective twice"),
    ({"margin": -1}, "promotion.margin must be a number >= 0"),
    ({"floor": True}, "promotion.floor must be a number >= 0"),
    ({"fallbacks": 1.5}, "promotion.fallbacks must be a whole number >= 0"),
])
def test_bad_settings_are_refused_with_what_is_allowed(bad, message):
    with pytest.raises(ValueError, match=message):
        Pareto(**bad)


def test_a_real_loop_promotes_on_the_front_and_says_so(tmp_path):
    """Every nominee, recomputed from the ledger: no candidate of its generation and not the incumbent
    has at least its proxy at no more compute (with one of them strictly better)."""
    state, _ = run_loop(tmp_path, "promotion=pareto", "gate=off")
    assert state.finished
    events = ledger_events(tmp_path)
    nominated = [e for e in events if e.event == "nominated"]
    assert nominated and all(e.reasons[0].startswith("on the front of (proxy, compute) with ") for e in nominated)
    compute = {e.successor: e.metrics["compute"] for e in events if e.event == "trained"}
    proxy = {e.successor: e.metrics["proxy"] for e in events if e.event == "evaluated"}
    for e in nominated:
        others = [x.successor for x in events if x.event == "evaluated" and x.generation == e.generation] + [e.parent]
        mine = (proxy[e.successor], -compute[e.successor])
        assert not any(proxy[o] >= mine[0] and -compute[o] >= mine[1] and (proxy[o], -compute[o]) != mine
                       for o in others if o != e.successor)


def test_compute_is_what_execution_counted_where_it_did():
    from loop.promotion.pareto import compute

    counted = scored("a", 0.9, 1000, 100)
    assert compute(counted) == 100_000  # parameters x steps: a successor trained before the count existed
    facts = {**counted.successor.train, "compute": 7_000_000}
    with_count = Scored(Successor("a" * 4, counted.successor.candidate, None, facts), counted.scores, 0.9)
    assert compute(with_count) == 7_000_000
