"""The paired statistics the gate vetoes with."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

import loop.gate.paired
from loop.gate.paired import Comparison, Vectorised, accuracy_regression, bootstrap_regression, holm


def test_accuracy_regression_at_zero_tolerance_is_mcnemars_exact_test():
    incumbent = np.array([1] * 30 + [0] * 10 + [1] * 60)
    nominee = np.array([0] * 30 + [1] * 10 + [1] * 60)  # loses 30 items, wins 10
    result = accuracy_regression(nominee, incumbent, tolerance=0.0)
    assert result.regression == pytest.approx(0.2)
    assert result.p == pytest.approx(binomtest(30, 40, 0.5, alternative="greater").pvalue)


def test_a_tolerance_makes_the_same_drop_harder_to_call_a_regression():
    incumbent = np.array([1] * 30 + [0] * 10 + [1] * 60)
    nominee = np.array([0] * 30 + [1] * 10 + [1] * 60)
    strict, lenient = (accuracy_regression(nominee, incumbent, t).p for t in (0.0, 0.15))
    assert strict < 0.01 < lenient
    assert accuracy_regression(nominee, incumbent, 0.5).p == 1.0  # can't exceed it even losing all


def test_identical_or_better_models_never_regress():
    items = np.random.default_rng(0).integers(0, 2, 200)
    assert accuracy_regression(items, items, 0.0).p == 1.0
    better = np.maximum(items, np.random.default_rng(1).integers(0, 2, 200))
    assert accuracy_regression(better, items, 0.0).p > 0.5


def mean_of_first_column(items: np.ndarray) -> float:
    return float(items[:, 0].mean())


def test_paired_bootstrap_finds_a_clear_regression_and_not_noise():
    rng = np.random.default_rng(0)
    incumbent = rng.normal(0.0, 1.0, (300, 1))
    worse = incumbent + 0.5  # lower is better: worse by 0.5 on every item
    clear = bootstrap_regression(mean_of_first_column, worse, incumbent, 0.1, higher_is_better=False, seed=1)
    assert clear.regression == pytest.approx(0.5) and clear.p < 0.01
    noise = incumbent + rng.normal(0.0, 0.05, (300, 1))
    unclear = bootstrap_regression(mean_of_first_column, noise, incumbent, 0.1, higher_is_better=False, seed=1)
    assert unclear.p > 0.5
    again = bootstrap_regression(mean_of_first_column, worse, incumbent, 0.1, higher_is_better=False, seed=1)
    assert again == clear  # deterministic for a seed


def test_holm_steps_down_and_stops_at_the_first_survivor():
    rejected = holm({"a": 0.001, "b": 0.02, "c": 0.04, "d": 0.5}, alpha=0.05)
    assert rejected == {"a": pytest.approx(0.0125)}  # b: 0.02 >= 0.05/3 stops the procedure
    assert set(holm({"a": 0.001, "b": 0.01, "c": 0.02}, alpha=0.05)) == {"a", "b", "c"}
    assert holm({}, 0.05) == {}


def test_the_bootstrap_stops_early_only_when_far_from_any_veto():
    calls = []

    def counted(items):
        calls.append(1)
        return mean_of_first_column(items)

    rng = np.random.default_rng(0)
    incumbent = rng.normal(0.0, 1.0, (200, 1))
    same = bootstrap_regression(counted, incumbent.copy(), incumbent, 0.1, False, rounds=1000, first=100)
    assert same.p >= 0.2 and len(calls) == 2 + 2 * 100
    calls.clear()
    worse = bootstrap_regression(counted, incumbent + 0.5, incumbent, 0.1, False, rounds=1000, first=100)
    assert worse.p < 0.01 and len(calls) == 2 + 2 * 1000


@pytest.mark.parametrize("vectorised", [False, True])
def test_a_p_exactly_at_clearly_not_is_final_after_the_first_rounds(vectorised):
    """The stopping rule is p >= clearly_not: with 4 early rounds that all regress beyond the
    tolerance, p = (1 + 0) / (4 + 1) = 0.2 exactly, and 0.2 stops the test there."""
    incumbent, nominee = np.ones((20, 1)), np.zeros((20, 1))  # every resample regresses by exactly 1
    statistic = Vectorised(mean_of_first_column, means_of_first_column) if vectorised else mean_of_first_column
    early = bootstrap_regression(statistic, nominee, incumbent, 0.5, True, rounds=10, first=4, clearly_not=0.2)
    assert early == Comparison(1.0, 0.2)
    later = bootstrap_regression(statistic, nominee, incumbent, 0.5, True, rounds=10, first=4, clearly_not=0.21)
    assert later == Comparison(1.0, 1 / 11)  # p = 0.2 < 0.21: all 10 rounds


def means_of_first_column(stack: np.ndarray) -> np.ndarray:
    return stack[:, :, 0].mean(1)


@pytest.mark.parametrize("shift, rounds, first", [
    (0.5, 1000, 100),  # a clear regression: all 1000 rounds
    (0.0, 1000, 100),  # the same model: stops after 100
    (0.1, 1000, 100),  # about at the tolerance
    (0.5, 300, 0),  # no early look
    (0.0, 50, 100),  # fewer rounds than the early look
    (0.5, 100, 100),  # as many rounds as the early look: one block, a clear regression
    (0.0, 1, 100),  # one round (no rounds at all is refused: test_gates.py)
])
def test_the_vectorised_bootstrap_gives_the_same_comparison_as_the_loop(shift, rounds, first):
    rng = np.random.default_rng(0)
    incumbent = rng.normal(0.0, 1.0, (200, 2))
    nominee = incumbent + shift + rng.normal(0.0, 0.05, (200, 2))
    both = Vectorised(mean_of_first_column, means_of_first_column)
    for higher_is_better in (False, True):
        args = (nominee, incumbent, 0.1, higher_is_better, rounds, 3, first)
        assert bootstrap_regression(both, *args) == bootstrap_regression(mean_of_first_column, *args)


def test_the_vectorised_bootstrap_takes_one_call_a_block_and_chunks_large_stacks(monkeypatch):
    calls = []

    def counted(stack):
        calls.append(len(stack))
        return means_of_first_column(stack)

    rng = np.random.default_rng(0)
    incumbent = rng.normal(0.0, 1.0, (200, 1))
    both = Vectorised(mean_of_first_column, counted)
    same = bootstrap_regression(both, incumbent.copy(), incumbent, 0.1, False)
    assert same.p >= 0.2 and calls == [100, 100]  # the early look, once per model
    calls.clear()
    worse = bootstrap_regression(both, incumbent + 0.5, incumbent, 0.1, False)
    assert worse.p < 0.01 and calls == [100, 100, 900, 900]
    calls.clear()
    monkeypatch.setattr(loop.gate.paired, "STACK_BYTES", incumbent.nbytes * 400)  # 400 resamples a chunk
    assert bootstrap_regression(both, incumbent + 0.5, incumbent, 0.1, False) == worse
    assert calls == [100, 100, 400, 400, 400, 400, 100, 100]


def test_holm_breaks_ties_by_name_and_keeps_a_p_value_at_its_threshold():
    from loop.gate.paired import holm

    assert holm({"b": 0.01, "a": 0.01}, 0.05) == {"a": 0.025, "b": 0.05}  # the order of a tie is its names'
    assert holm({"a": 0.05}, 0.05) == {}  # p equal to the threshold is not below it
    assert holm({"a": 0.0499}, 0.05) == {"a": 0.05}


def test_no_items_is_no_regression():
    from loop.gate.paired import Comparison, accuracy_regression

    assert accuracy_regression([], [], 0.0) == Comparison(0.0, 1.0)
