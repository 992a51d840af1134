"""The improver improves itself: the same engine one level up, checked through what it wrote."""

from __future__ import annotations

import statistics

import pytest
from omegaconf import OmegaConf

from conftest import OUTER, compose_config, ledger_events
from loop.config import ConfigError
from loop.meta.improver import improver_config
from loop.meta.utility import run_inner
from loop.objective.improvers import Improvers, task_draw
from loop.stages import Genome
from loop.tools.cli import build_stages, run_experiment
from loop.tools.verify import verify



def run_outer(run_dir, *overrides):
    cfg = compose_config(*OUTER, *overrides)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    lines: list[str] = []
    return run_experiment(cfg, run_dir, say=lines.append), cfg


@pytest.fixture(scope="module")
def outer(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("outer") / "run"
    state, cfg = run_outer(run_dir)
    return run_dir, state, cfg


def test_an_outer_run_scores_improvers_by_their_inner_loops(outer):
    run_dir, state, _ = outer
    assert state.finished
    evaluated = [e for e in ledger_events(run_dir) if e.event == "evaluated"]
    assert len(evaluated) == 1 + 2  # generation 0's improver and 2 candidates
    for e in evaluated:
        m = e.metrics
        assert m["proxy"] == pytest.approx(statistics.fmean([m["proxy/imp/0"], m["proxy/imp/1"]]), abs=1e-6)
        assert m["truth"] == pytest.approx(statistics.fmean([m["truth/imp/0"], m["truth/imp/1"]]), abs=1e-6)
        assert m["proxy/inner_loops"] == m["truth/inner_loops"] == 2
        assert m["proxy/inner_trained"] > 0 and m["proxy/inner_steps"] > 0  # compute, counted
    cards = [(run_dir / "successors" / f"{e.successor}.json") for e in evaluated]
    assert all('"family": "improver"' in c.read_text() for c in cards)
    started = ledger_events(run_dir)[0]
    assert started.detail["plugins"]["truth"] == "evaluators.meta_utility.MetaUtility"
    problems, summary = verify(run_dir)
    assert problems == [] and "3 code files" in summary  # its audit has nothing to run: not hashed
    report = (run_dir / "report.md").read_text()
    assert "## Improvers: meta-utility on meta-train and held-out tasks" in report
    base = evaluated[0].metrics
    assert f"| 0 | `{evaluated[0].successor[:8]}` | {base['proxy']:+.4f} [" in report  # mean over the draws
    assert (f"Meta-training spent {sum(e.metrics['proxy/inner_trained'] for e in evaluated):,.0f} / "
            f"{sum(e.metrics['proxy/inner_steps'] for e in evaluated):,.0f} inner successors") in report


def test_the_ledger_proxy_is_what_the_improvers_inner_loops_give_when_rerun(outer):
    """An independent recomputation: the inner loops rerun from the improver's card and the proxy
    split's rows, outside the engine."""
    run_dir, _, cfg = outer
    from evaluators.meta_utility import MetaUtility

    first = next(e for e in ledger_events(run_dir) if e.event == "evaluated" and e.generation == 1)
    genome = Genome.from_dict(__import__("json").loads((run_dir / "successors" / f"{first.successor}.json")
                                                       .read_text())["genome"])
    objective = Improvers(**{k: v for k, v in OmegaConf.to_container(cfg.objective).items() if k != "_target_"})
    source = MetaUtility(inner=list(cfg.evaluator.inner)).source()
    for i, row in enumerate(objective.rows("proxy")):
        run = run_inner(improver_config(source, genome, row, cfg.evaluator.generations, cfg.evaluator.compute))
        assert run.imp(1) == pytest.approx(first.metrics[f"proxy/imp/{i}"], abs=1e-6)


def test_held_out_families_are_only_in_the_truth_split():
    objective = Improvers(budget={"generations": 1, "candidates": 1, "steps": 1}, meta_train=["classification", "wine"],
                          held_out=["digits_noisy"], seeds=6)
    task = objective.prepare()
    for split in ("train", "proxy", "audit", "probe"):
        assert {task_draw(r)[0] for r in task.splits[split].x.tolist()} == {"classification", "wine"}
    assert {task_draw(r)[0] for r in task.splits["truth"].x.tolist()} == {"digits_noisy"}
    draws = [tuple(r[:2]) for s in ("train", "proxy", "audit", "probe") for r in task.splits[s].x.tolist()]
    assert len(draws) == len(set(draws))  # no task draw serves two splits
    assert objective.rows("proxy") == Improvers(**{**objective.__dict__}).rows("proxy")  # paired: fixed rows


@pytest.mark.parametrize("override,message", [
    ("objective.meta_train=[mnist]", "objective.meta_train names unknown task family 'mnist'"),
    ("objective.held_out=[classification]", "objective.held_out lists classification, also in objective.meta_train"),
    ("successor.init.recipe.candidates=20", r"gene recipe.candidates=20 is outside \[2, 8\]"),
    ("+successor.space.recipe.lr={type:float,low:0.1,high:1}", "the improver family has no gene recipe.lr"),
    ("evaluator.compute=0", "compute must be a whole number >= 1, got 0"),
    ("evaluator.inner=['nope=1']", r"inner=\['nope=1'\] does not compose into an inner loop's config: .*\+nope=1"),
])
def test_bad_outer_input_stops_before_anything_is_written(tmp_path, override, message):
    cfg = compose_config(*OUTER, override)
    with pytest.raises(ConfigError, match=message):
        stages = build_stages(cfg)
        stages.evaluator.source()  # composing the inner config is part of building it
    with pytest.raises(ConfigError):
        run_experiment(cfg, tmp_path / "run", say=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_the_two_arms_differ_only_in_whose_step_sizes_propose(tmp_path):
    recursive = compose_config(*OUTER, "generator.steps_from=self")
    control = compose_config(*OUTER, "generator.steps_from=generation0")
    a, b = OmegaConf.to_container(recursive), OmegaConf.to_container(control)
    assert a.pop("generator") != b.pop("generator")
    assert a == b  # equal compute, same tasks, same seeds


def test_the_outer_gate_judges_improvers_by_the_probe_regressions_their_inner_loops_promote(tmp_path):
    run_dir = tmp_path / "run"
    # inner loops long enough that improvers differ, and no promotion margin: a nominee to review
    state, _ = run_outer(run_dir, "gate=inner_probes", "evaluator.compute=120", "evaluator.generations=2",
                         "promotion.margin=0")
    assert state.finished
    reviews = [e for e in ledger_events(run_dir) if e.event in ("promoted", "vetoed") and e.generation >= 1]
    assert reviews, "the tiny run should nominate at least one improver"
    for e in reviews:
        assert set(e.metrics) == {"probe/inner_regressions", "probe/inner_regressions_incumbent"}
        assert e.reasons[0].startswith("inner probe regressions: the nominee's inner loops promoted a model")
        assert (e.event == "vetoed") == (e.metrics["probe/inner_regressions"]
                                         > e.metrics["probe/inner_regressions_incumbent"])


def test_the_outer_gate_vetoes_more_regressions_than_the_incumbents_and_names_the_probes(monkeypatch):
    from types import SimpleNamespace

    from loop.gate.improvers import InnerProbes
    from loop.stages import DataView, Split
    import torch

    gate = InnerProbes(inner=["execution=serial"], generations=1, compute=60)
    findings = {"nominee": [["calibration"], ["robustness", "calibration"], []], "incumbent": [[], [], ["ood"]]}
    monkeypatch.setattr(gate, "judge", lambda improver, rows: findings[improver.id])
    rows = DataView({"probe": Split(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long))},
                    ["probe"], "gate")
    scored = lambda name: SimpleNamespace(id=name)  # noqa: E731
    decision = gate.review(scored("nominee"), scored("incumbent"), scored("incumbent"), rows, [])
    assert decision.action == "veto" and "exact McNemar p = 0.5)" in decision.reasons[0]  # b = 2, c = 1
    assert decision.probes == {"probe/inner_regressions": 2.0, "probe/inner_regressions_incumbent": 1.0}
    assert "on 2 of 3 draws, the incumbent's on 1 (margin 0" in decision.reasons[0]
    assert decision.reasons[0].endswith("probes that fired for the nominee: calibration (2), robustness (1)")
    tolerant = InnerProbes(inner=["execution=serial"], generations=1, compute=60, margin=1)
    monkeypatch.setattr(tolerant, "judge", lambda improver, rows: findings[improver.id])
    assert tolerant.review(scored("nominee"), scored("incumbent"), scored("incumbent"), rows, []).action == "promote"
    with pytest.raises(ValueError, match="gate.margin must be a whole number >= 0, got -1"):
        InnerProbes(margin=-1)
    findings["nominee"] = [[], [], []]
    quiet = gate.review(scored("nominee"), scored("incumbent"), scored("incumbent"), rows, [])
    assert quiet.action == "promote" and quiet.reasons[0].endswith("probes that fired for the nominee: none")


def test_the_outer_gate_builds_its_measurement_from_its_own_settings():
    from loop.gate.improvers import InnerProbes
    from loop.stages import TaskShape

    gate = InnerProbes(inner=["execution=serial"], generations=2, compute=90)
    assert (gate._meta.inner, gate._meta.generations, gate._meta.compute) == (["execution=serial"], 2, 90)
    with pytest.raises(ValueError, match="gate.margin must be a whole number >= 0, got True"):
        InnerProbes(margin=True)
    with pytest.raises(ValueError, match=r"gate=inner_probes judges improvers \(objective=improvers\), not 13 float"):
        gate.check_task(TaskShape(13, 3, 10, "cpu"))
    gate.check_task(TaskShape(3, 1, 1, "cpu", inputs="tasks"))


class SpyJudge:
    """A probe gate one level down that records what it is handed and vetoes with set reasons."""

    def __init__(self, action="veto"):
        self.calls, self.action = [], action

    def review(self, nominee, incumbent, baseline, data, history):
        from loop.stages import Decision

        self.calls.append((nominee.id, incumbent.id, baseline.id, data.stage, data.names, history))
        return Decision(self.action, {}, ("calibration/ece: 0.08 vs 0.03 (tolerance 0.02, p=0.001)",
                                          "robustness/noise_0.3: 0.71 vs 0.80 (tolerance 0.05, p=0.002)",
                                          "ood/auroc: ok", "a note without a colon"))


@pytest.mark.parametrize("family,judge", [("classification", "tokens"), ("digits_subset", "probes")])
def test_an_inner_loops_regressions_are_its_final_model_against_its_first_by_the_judge_for_its_inputs(family, judge):
    from loop.gate.improvers import InnerProbes
    from loop.meta.improver import Protocol, Snapshot, snapshot_config

    gate = InnerProbes(inner=["execution=serial"], generations=2, compute=300)
    spies = {"tokens": SpyJudge(), "probes": SpyJudge()}
    gate._judges.update(spies)  # what the gate would build for each kind of task, replaced by spies
    cfg = snapshot_config(compose_config("tracker=none", "execution=serial"), Snapshot("g", {"rate": 0.3, "scale": 0.4}),
                          Protocol(families=(family,), seeds=2, generations=2, candidates=4, steps=150), 0)
    run, fired = run_inner(cfg, after=lambda engine, state: (gate.regressions(engine, state), state))
    found, state = fired
    assert state.incumbent != state.baseline, "the inner loop should promote something to judge"
    assert found == ["calibration/ece", "robustness/noise_0.3"]  # the failed tests' names, not the passed or notes
    (call,) = spies[judge].calls
    assert call == (state.incumbent, state.baseline, state.baseline, "gate", ("audit", "probe", "proxy"), [])
    assert not spies["tokens" if judge == "probes" else "probes"].calls
    spies[judge].action = "promote"
    _, (clean, _) = run_inner(cfg, after=lambda engine, state: (gate.regressions(engine, state), state))
    assert clean == []


def test_an_inner_loop_that_promoted_nothing_has_nothing_to_regress():
    from types import SimpleNamespace

    from loop.gate.improvers import InnerProbes

    gate = InnerProbes(inner=["execution=serial"], generations=1, compute=60)
    gate._judges.update({"tokens": SpyJudge(), "probes": SpyJudge()})
    assert gate.regressions(SimpleNamespace(task=None), SimpleNamespace(incumbent="a", baseline="a")) == []


def test_the_judges_it_builds_are_the_configured_probe_gates():
    from loop.gate.improvers import InnerProbes

    gate = InnerProbes(inner=["execution=serial"], generations=1, compute=60)
    engine = SimpleEngine()
    for image, name in ((True, "probes"), (False, "tokens")):
        engine.task.image = (8, 8) if image else ()
        with pytest.raises(RuntimeError, match="stop before scoring"):
            gate.regressions(engine, type("S", (), {"incumbent": "b", "baseline": "a"})())
    names = {n: sorted(p.name for p in j.probes) for n, j in gate._judges.items()}
    assert "shortcut" in names["probes"] and "shortcut" not in names["tokens"]


class SimpleEngine:
    """Just enough of an engine for the gate to choose and build its judge, then stop."""

    def __init__(self):
        self.task = type("T", (), {"image": ()})()

    def scored(self, successor):
        raise RuntimeError("stop before scoring")


def test_operator_weights_and_inheritance_evolve_as_improver_genes(tmp_path):
    """successor=improver_operators (experiment=recursive_improver_operators): generation 0 is
    today's machinery (all weight on mutating every gene, inheritance free); the outer generator
    moves the weights like any other improver gene, and each improver's inner loops run with them."""
    run_dir = tmp_path / "ops"
    state, _ = run_outer(run_dir, "successor=improver_operators")  # generation 0's rate: some genes stay "free"
    events = ledger_events(run_dir)
    recipes = [e.detail["genome"]["recipe"] for e in events if e.event == "proposed"]
    assert recipes[0]["weight_all"] == 1.0 and recipes[0]["inner_inherit"] == recipes[0]["inner_distill"] == "free"
    assert sum(recipes[0][f"weight_{op}"] for op in ("arch", "recipe", "lr", "crossover", "restart")) == 0
    moved = [r for r in recipes[1:] if any(r[k] != recipes[0][k] for k in r if k.startswith(("weight_", "inner_")))]
    assert moved, recipes  # most of its recipe genes are weights and policies: a child moves some
    assert any("free" in (r["inner_inherit"], r["inner_distill"]) for r in recipes[1:])  # not read as its own
    assert state.finished and verify(run_dir)[0] == []
