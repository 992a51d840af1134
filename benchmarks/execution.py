"""Execution speed, side by side in one run: how much beyond the training itself each way of
training a population costs.

    python benchmarks/execution.py [--population 32] [--generations 2] [--steps 300] [--memory]

Workload: G generations x P successors of one small MLP (64 -> 64 -> 10, ReLU, Adam, batch 64) on
the digits train split, each successor with its own seed. Ways, each timed on the same workload:

- `hand loop`: what a user writes by hand: for each model, nn.Sequential + torch.optim.Adam + a
  Python loop over random batches (the reference: ratios are its time over theirs);
- `serial`, `batched`, and `processes` / `ray` when available: rsi-loop's execution plugins.

Also: achieved GFLOP/s of `batched` against this machine's measured fp32 matmul peak, and (with
--memory) the peak resident memory of the default `rsi-loop` run. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from loop.batched import Batched
from loop.execution import Serial
from loop.objectives import Digits
from loop.stages import Candidate, Genome, TaskShape

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
WIDTH, BATCH = 64, 64


def workload(population: int, steps: int, generation: int) -> list[Candidate]:
    genome = Genome("mlp", {"depth": 1, "width": WIDTH, "activation": "relu", "dropout": 0.0},
                    {"optimizer": "adam", "lr": 3e-3, "steps": steps, "batch_size": BATCH, "weight_decay": 0.0})
    return [Candidate(f"{generation}.{i}", genome, None, 1000 * generation + i) for i in range(population)]


def hand_loop(candidates: list[Candidate], x: torch.Tensor, y: torch.Tensor) -> None:
    for c in candidates:
        torch.manual_seed(c.seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(int(c.genome.recipe["steps"])):
            index = torch.randint(len(y), (BATCH,))
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def matmul_peak(size: int = 1024, repeats: int = 30) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def training_flop(population: int, steps: int) -> float:
    """Forward + backward of every step of every model: ~3x the forward's 2 * B * weights."""
    weights = 64 * WIDTH + WIDTH * 10
    return 3 * 2 * BATCH * weights * steps * population


def ways() -> dict[str, object]:
    found: dict[str, object] = {"serial": Serial(), "batched": Batched()}
    if importlib.util.find_spec("loop.pools"):
        from loop import pools

        found["processes"] = pools.Processes(workers=2)
        if importlib.util.find_spec("ray"):
            found["ray"] = pools.Ray(actors=2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--memory", action="store_true", help="also measure the default run's peak memory")
    args = parser.parse_args()

    task = Digits(budget={"generations": 1, "candidates": 1, "steps": args.steps}, fractions=FRACTIONS).prepare()
    view, split = task.view("execution", "train"), task.splits["train"]
    shape = TaskShape(64, 10, args.steps, "cpu")
    generations = [workload(args.population, args.steps, g + 1) for g in range(args.generations)]
    print(f"workload: {args.generations} generations x {args.population} MLPs 64-{WIDTH}-10, "
          f"{args.steps} Adam steps of batch {BATCH}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for candidates in generations:
        hand_loop(candidates, split.x, split.y)
    seconds["hand loop"] = time.perf_counter() - start
    for name, execution in ways().items():
        execution.train(generations[0][:2], view, shape)  # warm up: pools start, kernels load
        start = time.perf_counter()
        for candidates in generations:
            execution.train(candidates, view, shape)
        seconds[name] = time.perf_counter() - start

    peak = matmul_peak()
    flop = training_flop(args.population, args.steps) * args.generations
    print(f"{'way':<10} {'seconds':>8} {'speed-up vs hand loop':>22} {'GFLOP/s':>8} {'of peak':>8}")
    for name, t in seconds.items():
        print(f"{name:<10} {t:8.2f} {seconds['hand loop'] / t:21.2f}x {flop / t / 1e9:8.2f} {flop / t / 1e9 / peak:8.1%}")
    print(f"fp32 matmul peak measured here: {peak:.1f} GFLOP/s (1024x1024 torch.mm)")

    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "loop", "tracker=none", f"hydra.run.dir={tmp}/run"],
                           check=True, capture_output=True)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"default run (`rsi-loop tracker=none`): peak resident memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
