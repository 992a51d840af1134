"""Shared fixtures: compose real configs with Hydra's compose API, shrink budgets, write into
tmp_path, and keep wandb disabled."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"  # before anything imports wandb
pytest.register_assert_rewrite("tampering")  # the verify tests' shared fixtures (tests/loop/tools/tampering.py)
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
BIN = Path(sys.executable).parent
TINY = ["experiment=quick", "tracker=none"]  # 3 generations x 3 candidates x at most 150 steps
# rsi-loop-transfer at a tiny protocol: one held-out family, 2 paired seeds, 1 inner generation of 2 x 30 steps
TRANSFER_FAST = ["families=[classification]", "seeds=2", "generations=1", "candidates=2", "steps=30"]
# experiment=recursive_improver at a tiny budget: 1 outer generation of 2 improvers, 2 draws per split
OUTER = ["experiment=recursive_improver_quick", "tracker=none", "objective.seeds=2", "objective.budget.generations=1",
         "evaluator.generations=1", "evaluator.compute=60", "evaluator.inner=['execution=serial']",
         "evaluator.workers=1"]


def compose_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_loop(run_dir: Path, *overrides: str, resume: bool = False):
    """A real loop in-process at a tiny budget; writes `.hydra/config.yaml` as Hydra would."""
    from omegaconf import OmegaConf

    from loop.tools.cli import run_experiment

    cfg = compose_config(*TINY, *overrides)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    lines: list[str] = []
    state = run_experiment(cfg, run_dir, resume, say=lines.append)
    return state, lines


def synthetic_train_view():
    """160 random 64-feature items in 10 classes, as the execution stage sees them (train only)."""
    import torch

    from loop.stages import DataView, Split

    g = torch.Generator().manual_seed(0)
    x = torch.rand(160, 64, generator=g)
    y = torch.randint(0, 10, (160,), generator=g)
    held_out = Split(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))
    return DataView({"train": Split(x, y), "proxy": held_out}, ["train"], "execution")


# Batched and serial do the same arithmetic in another order (one bmm over the population against
# one mm per model), so they agree up to float rounding, not bit for bit; successor ids, a hash of
# the exact weights, therefore differ. Measured here over every test population: weights within
# 1.6e-6, final losses within 2.4e-7 (Adam amplifies rounding most). Held to about ten times that:
# a dropped optimizer term (weight decay, a momentum) moves weights by 1e-4 or more.
WEIGHTS_ATOL, WEIGHTS_RTOL, LOSS_ATOL = 2e-5, 1e-4, 2e-6


def assert_matches_serial(s, b) -> None:
    """`b` (batched) is `s` (serial) up to float rounding: same candidate, steps, size, loss and
    every weight; and its id is the hash of its own final weights (not of those it started from)."""
    import torch

    from loop.checkpoints import successor_id, weights_of
    from loop.stages import Successor

    assert isinstance(s, Successor) and isinstance(b, Successor)
    assert (b.candidate.key, b.genome, b.train["steps"]) == (s.candidate.key, s.genome, s.train["steps"])
    assert b.train["parameters"] == s.train["parameters"]  # padding never reaches the model
    assert b.train["compute"] == s.train["compute"]
    assert b.train["train_loss"] == pytest.approx(s.train["train_loss"], abs=LOSS_ATOL)
    mine, theirs = b.model.state_dict(), s.model.state_dict()
    assert list(mine) == list(theirs)
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], atol=WEIGHTS_ATOL, rtol=WEIGHTS_RTOL,
                                   msg=lambda m: f"{s.candidate.key} {name}: {m}")
    assert b.id == successor_id(b.genome.to_dict(), weights_of(b.model))


def ledger_events(run_dir: Path):
    from loop.ledger import read

    return read(run_dir / "ledger.jsonl")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One tiny finished run shared by read-only tests."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run_loop(run_dir)
    return run_dir
