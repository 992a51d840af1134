"""Shared fixtures: compose real configs with Hydra's compose API, shrink budgets, write into
tmp_path, and keep wandb disabled."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"  # before anything imports wandb
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
BIN = Path(sys.executable).parent
TINY = ["experiment=quick", "tracker=none"]  # 3 generations x 3 candidates x at most 150 steps


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


def ledger_events(run_dir: Path):
    from loop.ledger import read

    return read(run_dir / "ledger.jsonl")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One tiny finished run shared by read-only tests."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run_loop(run_dir)
    return run_dir
