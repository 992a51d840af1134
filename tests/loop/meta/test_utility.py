"""Meta-utility from real inner loops: imp@k read from their ledgers, kept and read back, paired
seed for seed, and a negative control that comes out null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import compose_config
from loop.ledger import read
from loop.meta.improver import Protocol, Snapshot
from loop.meta.utility import InnerLoops, InnerRun, imp_difference, measure, paired, paired_grid

TINY = Protocol(families=("classification", "digits_subset"), seeds=10, generations=2, candidates=2, steps=40)  # >= 10 seeds: the meta-level minimum
G0 = Snapshot("generation 0", {"rate": 0.3, "scale": 0.4})  # configs/successor/mlp.yaml's


@pytest.fixture(scope="module")
def source():
    return compose_config("tracker=none", "execution=serial")


@pytest.fixture(scope="module")
def measured(tmp_path_factory, source):
    loops = InnerLoops(tmp_path_factory.mktemp("meta"))
    return loops, measure(loops, source, G0, TINY), measure(loops, source, G0, TINY, control=True)


def test_an_inner_loop_is_a_real_run_read_back_from_its_ledger(measured):
    loops, runs, _ = measured
    assert loops.ran == 20 and len(runs) == 10
    for run in runs:
        events = read(loops.folder / run.ledger)
        finished = [e for e in events if e.event == "generation_finished"]
        assert [e.generation for e in finished] == [0, 1, 2]
        assert run.truth == tuple(e.metrics["incumbent/truth"] for e in finished)
        assert run.trained == sum(e.event == "trained" for e in events) == 1 + 2 * 2
        assert run.steps == sum(e.metrics["steps"] for e in events if e.event == "trained")
        started = events[0]
        assert started.detail["seed"] == run.seed and run.task in started.reasons[0]
        assert started.detail["plugins"]["gate"] == "loop.gate.gates.Off"
    assert [r.task for r in runs[:4]] == ["classification#0", "digits_subset#0", "classification#1", "digits_subset#1"]
    assert any(r.imp(2) != 0 for r in runs), "tiny inner loops should still move truth somewhere"


def test_imp_at_k_and_area_are_read_off_the_truth_curve():
    run = InnerRun("wine#0", 1, (0.5, 0.6, 0.55, 0.8), 7, 100, 1.0, "x")
    assert run.imp(1) == pytest.approx(0.1) and run.imp(3) == pytest.approx(0.3)
    assert run.area == pytest.approx((0.1 + 0.05 + 0.3) / 3)


def test_a_loop_run_before_is_read_back_not_rerun(measured, source):
    loops, runs, _ = measured
    again = InnerLoops(loops.folder)
    assert measure(again, source, G0, TINY) == runs and again.ran == 0
    kept = json.loads(next(loops.folder.glob("inner/*.json")).read_text())
    assert set(kept) == {"task", "seed", "truth", "trained", "steps", "seconds", "ledger"}


def test_same_config_gives_the_same_inner_loop_in_a_fresh_folder(measured, source, tmp_path):
    _, runs, _ = measured
    fresh = measure(InnerLoops(tmp_path), source, G0, Protocol(**{**TINY.__dict__, "seeds": 2}))
    assert [r.truth for r in fresh] == [r.truth for r in runs[:2]]


def test_the_negative_control_reseeds_the_same_tasks_and_comes_out_null(measured):
    _, runs, control = measured
    assert [r.task for r in control] == [r.task for r in runs]
    assert [r.seed for r in control] != [r.seed for r in runs]
    for k in (1, 2, None):
        diff = imp_difference(control, runs, k)
        assert diff.n == 10 and diff.low <= 0 <= diff.high, diff
    same = imp_difference(runs, runs, 2)
    assert (same.mean, same.low, same.high) == (0, 0, 0) and same.words() == "identical on every seed"


def test_another_improver_changes_the_inner_loops(measured, source):
    loops, runs, _ = measured
    bold = measure(loops, source, Snapshot("bold", {"rate": 1.0, "scale": 2.0}), TINY)
    assert [r.truth[0] for r in bold] == [r.truth[0] for r in runs]  # the same generation-0 model per seed
    assert [r.truth[1:] for r in bold] != [r.truth[1:] for r in runs]


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    shifted = paired(rng.normal(0.5, 0.1, 40))
    assert 0.45 < shifted.mean < 0.55 and shifted.low > 0.4 and shifted.excludes_zero and shifted.words() == "better"
    assert shifted.low < shifted.mean < shifted.high
    null = paired(rng.normal(0.0, 0.1, 40))
    assert null.low < 0 < null.high and null.words() == "no difference beyond seed noise"
    assert paired([-0.2, -0.3, -0.25, -0.22]).words() == "worse"
    assert paired([0.1]).words() == "too few seeds to say"
    with pytest.raises(ValueError, match="paired runs must match seed for seed: 1 against 2"):
        imp_difference([InnerRun("a", 0, (0, 1), 1, 1, 0, "")], [InnerRun("a", 0, (0, 1), 1, 1, 0, "")] * 2)


def test_a_grid_of_runs_and_seeds_resamples_both():
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.1, 10)  # the same task draws in every run: shared across rows
    grid = 0.02 + seed_effect[None, :] + rng.normal(0, 0.01, (5, 10))
    two_way = paired_grid(grid)
    naive = paired(grid.ravel())
    assert two_way.mean == pytest.approx(grid.mean()) and two_way.n == 50
    assert two_way.high - two_way.low > 1.5 * (naive.high - naive.low)  # pooling cells as independent is too sure
    assert paired_grid([[0.0, 0.0], [0.0, 0.0]]).words() == "identical on every seed"
    assert paired_grid([[0.1, 0.3, 0.2]]) == paired([0.1, 0.3, 0.2])
    with pytest.raises(ValueError, match="must be runs x seeds"):
        paired_grid([0.1, 0.2])


def test_inner_loops_on_worker_processes_are_the_same_inner_loops(source, tmp_path):
    from loop.meta.improver import snapshot_config
    from loop.meta.utility import run_inners

    tiny = Protocol(families=("classification",), seeds=2, generations=1, candidates=2, steps=30)
    cfgs = [snapshot_config(source, G0, tiny, i) for i in range(2)]
    here = run_inners(cfgs)
    there = run_inners(cfgs, workers=2, keep=[tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [(r.task, r.seed, r.truth, r.trained, r.steps) for r in there] == \
        [(r.task, r.seed, r.truth, r.trained, r.steps) for r in here]
    assert read(tmp_path / "a.jsonl")[-1].event == "run_finished"  # the worker kept its ledger
    loops = InnerLoops(tmp_path / "kept")
    assert loops.run_many(cfgs, workers=2) == loops.run_many(cfgs, workers=2) and loops.ran == 2
