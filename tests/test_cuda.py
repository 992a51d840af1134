"""On a CUDA GPU: execution trains there as on CPU, and a whole run works with `device=cuda`.
Skipped where there is none (this project's CI); `benchmarks/gpu.sh` runs them on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_matches_serial, ledger_events, run_loop
from loop.execution.batched import Batched
from loop.execution.serial import Serial
from loop.objective.tasks import Digits
from loop.stages import Candidate, Genome, Successor, TaskShape
from loop.tools.verify import verify

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]
FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}


@pytest.fixture(scope="module")
def train_view():
    task = Digits(budget={"generations": 1, "candidates": 1, "steps": 200}, fractions=FRACTIONS).prepare()
    return task.view("execution", "train")


def candidates() -> list[Candidate]:
    shapes = [(1, 16, "relu", "adam"), (2, 64, "tanh", "sgd"), (3, 32, "gelu", "adamw")]
    return [Candidate(f"1.{i}", Genome("mlp", {"depth": d, "width": w, "activation": a, "dropout": 0.0},
                                       {"optimizer": o, "lr": 3e-3, "steps": 200, "batch_size": 64, "weight_decay": 1e-4}),
                      None, 40 + i) for i, (d, w, a, o) in enumerate(shapes)]


def test_batched_on_the_gpu_matches_serial_on_the_gpu(train_view):
    shape = TaskShape(64, 10, 200, "cuda")
    for s, b in zip(Serial().train(candidates(), train_view, shape), Batched().train(candidates(), train_view, shape),
                    strict=True):
        assert_matches_serial(s, b)
        assert all(p.device.type == "cpu" for p in b.model.parameters())  # checkpoints are written from the CPU


def test_the_gpu_trains_what_the_cpu_trains(train_view):
    gpu = Batched().train(candidates(), train_view, TaskShape(64, 10, 200, "cuda"))
    cpu = Batched().train(candidates(), train_view, TaskShape(64, 10, 200, "cpu"))
    for g, c in zip(gpu, cpu, strict=True):
        assert isinstance(g, Successor) and g.train["train_loss"] == pytest.approx(c.train["train_loss"], abs=1e-2)


def test_bfloat16_on_the_gpu_trains_near_float32(train_view):
    shape = TaskShape(64, 10, 200, "cuda")
    low = Batched(dtype="bfloat16").train(candidates(), train_view, shape)
    full = Batched().train(candidates(), train_view, shape)
    for a, f in zip(low, full, strict=True):
        assert a.train["train_loss"] == pytest.approx(f.train["train_loss"], rel=0.1, abs=0.02)


def test_a_whole_run_on_the_gpu_writes_a_verifiable_ledger(tmp_path):
    state, _ = run_loop(tmp_path, "device=cuda")
    assert state.finished and verify(tmp_path)[0] == []
    started = next(e for e in ledger_events(tmp_path) if e.event == "run_started")
    assert "device cuda" in " ".join(started.reasons)
