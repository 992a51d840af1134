"""examples/: a user's own evaluator outside the package, run as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess

from conftest import BIN, ROOT, ledger_events

EXAMPLE = ROOT / "examples" / "my_evaluator"
TINY_BUDGET = ["tracker=none", "gate=off", "objective.budget.generations=1", "objective.budget.candidates=2",
               "objective.budget.steps=50"]


def rsi_loop(*args: str, cwd=EXAMPLE) -> subprocess.CompletedProcess:
    # no PYTHONPATH: my_evals imports because rsi-loop puts the working directory on sys.path
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "WANDB_MODE": "disabled"}
    return subprocess.run([str(BIN / "rsi-loop"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_own_evaluator_runs_from_its_folder(tmp_path):
    run_dir = tmp_path / "run"
    done = rsi_loop("--config-dir", "conf", "evaluator=mine", "allowed_targets=[my_evals]", *TINY_BUDGET,
                    f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    events = ledger_events(run_dir)
    started = events[0]
    assert started.event == "run_started" and started.detail["plugins"]["evaluator"] == "my_evals.TopK"
    evaluated = [e for e in events if e.event == "evaluated"]
    assert len(evaluated) == 3  # the baseline and two candidates
    for e in evaluated:
        assert {"proxy", "truth", "proxy/top1"} <= set(e.metrics)
        assert e.metrics["proxy"] >= e.metrics["proxy/top1"]  # top-2 never below top-1
    assert events[-1].event == "run_finished"
    assert "gap/incumbent" in [e for e in events if e.event == "generation_finished"][-1].metrics


def test_own_evaluator_needs_allowed_targets(tmp_path):
    run_dir = tmp_path / "refused"
    done = rsi_loop("--config-dir", "conf", "evaluator=mine", *TINY_BUDGET, f"hydra.run.dir={run_dir}")
    assert done.returncode == 2
    assert "evaluator._target_='my_evals.TopK' is not an allowed plugin" in done.stderr
    assert "allowed_targets=[my_evals]" in done.stderr
    assert not (run_dir / "ledger.jsonl").exists()
