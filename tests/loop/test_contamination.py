"""Contamination against a private twin (`contamination=twin`, `execution=leaky`, `objective=public_benchmark`):
the twin is private and of the same distribution, the measurement is recomputed from checkpoints, a
leaking run is flagged and an honest one is not, and a flagged nominee can be vetoed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import compose_config, ledger_events, run_loop
from loop.objective.scenarios import PublicBenchmark, benchmark_items

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}


@pytest.fixture
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets") / "twin.key"
    path.write_text("0f" * 32 + "\n")
    return path


def scenario(key, *more: str) -> list[str]:
    """The contamination scenario at a small budget, gate=tokens (the probes that read any features),
    generation 0 a 128-wide Adam MLP."""
    return ["objective=public_benchmark", "successor=mlp_leaky", "execution=leaky", "contamination=twin",
            f"contamination.key={key}", "gate=tokens", "objective.budget.generations=1", "objective.budget.candidates=2",
            "objective.budget.steps=600", "successor.init.arch.width=128", "successor.init.arch.activation=relu",
            "successor.init.recipe.optimizer=adam", "successor.init.recipe.lr=0.003",
            "successor.init.recipe.steps=600", "successor.init.recipe.batch_size=64", *more]


def test_the_twin_is_fresh_items_of_the_same_distribution_that_only_the_key_draws():
    bench = PublicBenchmark(budget={"generations": 1, "candidates": 1, "steps": 10}, fractions=FRACTIONS)
    one, again, other = (bench.twin(k, {"truth": 500}) for k in (b"k1", b"k1", b"k2"))
    assert torch.equal(one["truth"].x, again["truth"].x)  # the key fixes the twin
    assert not torch.equal(one["truth"].x, other["truth"].x)  # another key, other items
    public, _ = benchmark_items(**bench.generator())
    distances = torch.cdist(one["truth"].x, public).min(1).values
    assert distances.min() > 1.0  # no twin item is (near) a public one
    # the same distribution: the class balance and the feature moments of a large draw match the public items'
    big = bench.twin(b"k1", {"check": 3000})["check"]
    _, y = benchmark_items(**bench.generator())
    assert np.allclose(big.y.bincount(minlength=10) / 3000, y.bincount(minlength=10) / 3000, atol=0.025)
    se = public.std(0) * (2 / 3000) ** 0.5  # the standard error of a difference of two means of 3,000 items
    assert ((big.x.mean(0) - public.mean(0)).abs() < 5 * se).all()
    assert torch.allclose(big.x.std(0), public.std(0), rtol=0.08)


@pytest.mark.parametrize("overrides,message", [
    (["contamination.key=/nonexistent/twin.key"], "contamination.key: no key file at /nonexistent/twin.key; make one once"),
    (["objective=digits", "successor=mlp", "execution=batched"], "contamination=twin needs an objective that can draw"),
    (["contamination.threshold=0"], "contamination.threshold must be a number of standard errors > 0"),
])
def test_bad_contamination_settings_stop_before_anything_is_written(tmp_path, key, overrides, message):
    from loop.config import ConfigError
    from loop.tools.cli import run_experiment

    run_dir = tmp_path / "run"
    with pytest.raises((ConfigError, ValueError), match=message):
        run_experiment(compose_config("tracker=none", *scenario(key, *overrides)), run_dir)
    assert not run_dir.exists()


def test_a_key_inside_the_run_directory_is_refused(tmp_path):
    from loop.config import ConfigError
    from loop.tools.cli import run_experiment

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "twin.key").write_text("ab" * 32)
    with pytest.raises(ConfigError, match="contamination.key must be outside the run directory"):
        run_experiment(compose_config("tracker=none", *scenario(run_dir / "twin.key")), run_dir)
    assert [p.name for p in run_dir.iterdir()] == ["twin.key"]


def recomputed(run_dir, key, successor: str) -> tuple[float, float]:
    """(gap, truth twin accuracy) of one successor, from its checkpoint and a twin drawn here."""
    from loop.checkpoints import Checkpoints
    from loop.stages import Genome, TaskShape

    bench = PublicBenchmark(budget={"generations": 1, "candidates": 1, "steps": 10}, fractions=FRACTIONS)
    task = bench.prepare()
    twin = bench.twin(key.read_bytes().strip(), {"check": 2000, "truth": 2000})
    cards = Checkpoints(run_dir)
    model = cards.load_model(successor, Genome.from_dict(cards.load_card(successor)["genome"]),
                             TaskShape.of(task, "cpu")).eval()
    with torch.no_grad():
        def acc(x, y):
            return (model(x).argmax(1) == y).double().mean().item()
        public = acc(torch.cat([task.splits["audit"].x, task.splits["probe"].x]),
                     torch.cat([task.splits["audit"].y, task.splits["probe"].y]))
        return public - acc(twin["check"].x, twin["check"].y), acc(twin["truth"].x, twin["truth"].y)


@pytest.mark.parametrize("leak", ["public", "none"])
def test_a_leaking_run_is_flagged_and_an_honest_one_is_not(tmp_path, key, leak):
    """Generation 0 trains on the whole public benchmark (leak) or on its train split only; every
    evaluated event carries the measurement, recomputed here from the checkpoint and the key. The
    threshold (3 standard errors) against the honest spread measured in docs/independence.md."""
    state, _ = run_loop(tmp_path, *scenario(key, f"successor.init.recipe.extra_data={leak}",
                                            "execution=batched" if leak == "none" else "execution=leaky"))
    assert state.finished
    evaluated = [e for e in ledger_events(tmp_path) if e.event == "evaluated"]
    assert len(evaluated) == 3 and all("contamination/z" in e.metrics for e in evaluated)
    baseline = evaluated[0]
    gap, truth_twin = recomputed(tmp_path, key, baseline.successor)
    assert baseline.metrics["contamination/gap"] == pytest.approx(gap, abs=1e-6)
    assert baseline.metrics["contamination/truth_twin"] == pytest.approx(truth_twin, abs=1e-6)
    if leak == "public":
        assert baseline.metrics["contamination/flag"] == 1.0 and baseline.metrics["contamination/z"] > 3
        assert baseline.metrics["truth"] - truth_twin > 0.05  # the hidden truth is inflated, the twin is not
    else:
        assert not any(e.metrics["contamination/flag"] for e in evaluated)
    report = (tmp_path / "report.md").read_text()
    flagged = sum(bool(e.metrics["contamination/flag"]) for e in evaluated)
    from loop.tools.verify import verify

    started = ledger_events(tmp_path)[0].detail
    assert started["plugins"]["contamination"] == "loop.contamination.Twin"
    assert {"code/contamination", "twin/check", "twin/truth"} <= set(started["hashes"])
    assert verify(tmp_path)[0] == []  # the check's code is compared like the judges'; the twin is not rebuilt
    assert f"**{flagged} of 3 successors flagged as contaminated**" in report


def test_a_flagged_nominee_is_vetoed_before_the_gate_when_the_check_vetoes(tmp_path, key):
    """An honest generation 0; children that switch the leak on score higher on the proxy (they trained on its
    items). With the veto on, each flagged nominee is vetoed by the check with its gap and z, before the gate
    (gate=tokens: the probes that read any features) reviews it; the others are reviewed by the gate."""
    run_loop(tmp_path, *[o.replace("generations=1", "generations=2").replace("candidates=2", "candidates=6")
                         for o in scenario(key, "contamination.veto=true")])
    events = ledger_events(tmp_path)
    nominated = [e for e in events if e.event == "nominated"]
    assert nominated, "generation 1 nominated no one: nothing was checked"
    for n in nominated:
        flag = next(e for e in events if e.event == "evaluated" and e.successor == n.successor).metrics
        decision = next(e for e in events if e.event in ("promoted", "vetoed") and e.seq > n.seq)
        if flag["contamination/flag"]:
            assert decision.event == "vetoed" and decision.reasons[0].startswith("contamination: +")
            assert decision.metrics["contamination/z"] == flag["contamination/z"]
            assert not any(e.event == "tests_run" and e.successor == n.successor for e in events)
        else:  # the gate reviewed it: its probes' readings are in the decision
            assert any(k.startswith("probe/") for k in decision.metrics)
    assert any(e.event == "vetoed" and e.reasons[0].startswith("contamination: ") for e in events)


def test_the_sweep_report_counts_flagged_successors_per_group_from_the_ledgers(tmp_path, key):
    from loop.ledger import read
    from loop.tools.compare import group, load, markdown

    sweep = tmp_path / "sweep"
    for job, leak in enumerate(("public", "none")):
        run = sweep / str(job)
        run_loop(run, *scenario(key, f"successor.init.recipe.extra_data={leak}"))
        (run / ".hydra" / "overrides.yaml").write_text(f"- successor.init.recipe.extra_data={leak}\n")
    text = markdown("sweep", group(load(sweep)), 0.95)
    section = text.split("## Contamination", 1)[1].split("\n## ", 1)[0]
    for job, leak in enumerate(("public", "none")):
        evaluated = [e for e in read(sweep / str(job) / "ledger.jsonl") if e.event == "evaluated"]
        flagged = sum(bool(e.metrics["contamination/flag"]) for e in evaluated)
        row = next(line for line in section.splitlines() if line.startswith(f"| `successor.init.recipe.extra_data={leak}` |"))
        assert row.split(" | ")[2] == f"{flagged} / {len(evaluated)}"
        assert float(row.split(" | ")[5]) == pytest.approx(max(e.metrics["contamination/z"] for e in evaluated), abs=0.005)
