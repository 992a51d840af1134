"""Execution speed, side by side in one run: how much beyond the training itself each way of
training a population costs.

    python benchmarks/execution.py [--population 32] [--generations 2] [--steps 300] [--anchors]

Workload: G generations x P successors of one small MLP (64 -> 64 -> 10, ReLU, Adam, batch 64) on
the digits train split, each successor with its own seed. Ways, each timed on the same workload:

- `hand loop`: what a user writes by hand: for each model, nn.Sequential + torch.optim.Adam + a
  Python loop over random batches (the reference: ratios are its time over theirs);
- `serial`, `batched`, and `processes` / `ray` when available: rsi-loop's execution plugins;
- with --anchors (needs `pip install 'ray[tune]'`): `tune fifo`, Ray Tune's FIFO scheduler over the
  same P trials per generation (each trial the hand loop for one model, reporting its final loss
  once), and `tune pbt`, Population Based Training over them (reporting and checkpointing every 50
  steps, lr mutated).

`ray`'s and the anchors' overhead once warm: their wall time over the ideal training time on the
same 2 CPUs, i.e. the single-threaded time of the same training (`serial` for `ray`, the hand loop
for Tune) divided by the 2 workers.

Also: achieved GFLOP/s of `batched` against this machine's measured fp32 matmul peak. Printed,
never asserted. The default run's own time and memory: benchmarks/default_run.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from loop.execution.batched import Batched
from loop.execution.serial import Serial
from loop.objective.tasks import Digits
from loop.stages import Candidate, Genome, TaskShape

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # token auth would need a secret set up per machine
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables on the console

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


def one_thread(fn, *args) -> float:
    """Seconds `fn(*args)` takes on one torch thread (what each Ray actor / Tune trial uses)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        fn(*args)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def tune_trial(config: dict, x: torch.Tensor, y: torch.Tensor) -> None:
    """One Tune trial: the hand loop for one model. Without `every`, reports its final loss once;
    with it, reports and checkpoints every `every` steps, resuming from a checkpoint when PBT
    hands it one (the exploited trial's weights, optimizer state and step)."""
    import ray.tune

    torch.set_num_threads(1)
    torch.manual_seed(config["seed"])
    model = torch.nn.Sequential(torch.nn.Linear(64, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    steps, every, step = config["steps"], config.get("every"), 0
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, "state.pt"), weights_only=True)  # our own tensors only
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        for group in optimizer.param_groups:
            group["lr"] = config["lr"]  # PBT's explored lr, not the exploited trial's
    while step < steps:
        index = torch.randint(len(y), (BATCH,))
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if every and (step % every == 0 or step == steps):
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
                           os.path.join(folder, "state.pt"))
                ray.tune.report({"loss": loss.item(), "step": step},
                                checkpoint=ray.tune.Checkpoint.from_directory(folder))
    if not every:
        ray.tune.report({"loss": loss.item(), "step": step})


def tune_anchor(kind: str, generations: list[list[Candidate]], x: torch.Tensor, y: torch.Tensor,
                steps: int) -> float:
    """Seconds `tuner.fit()` takes over all generations (Ray already started, not timed)."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining

    trainable = tune.with_parameters(tune_trial, x=x, y=y)
    total = 0.0
    for candidates in generations:
        space = {"seed": tune.grid_search([c.seed for c in candidates]), "lr": 3e-3, "steps": steps}
        if kind == "pbt":
            space["every"] = 50
            scheduler = PopulationBasedTraining(time_attr="step", perturbation_interval=50,
                                                hyperparam_mutations={"lr": tune.loguniform(3e-4, 3e-2)})
        else:
            scheduler = FIFOScheduler()
        with tempfile.TemporaryDirectory() as storage:
            tuner = tune.Tuner(trainable, param_space=space,
                               tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler,
                                                           num_samples=1, reuse_actors=True),
                               run_config=tune.RunConfig(storage_path=storage, verbose=0))
            start = time.perf_counter()
            results = tuner.fit()
            total += time.perf_counter() - start
            if results.num_errors:
                raise RuntimeError(f"tune {kind}: {results.num_errors} trials failed: {results.errors[:1]}")
    return total


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
    if importlib.util.find_spec("loop.execution.pools"):
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
    parser.add_argument("--anchors", action="store_true",
                        help="also time the Ray Tune FIFO and PBT anchors (needs ray[tune])")
    args = parser.parse_args()

    task = Digits(budget={"generations": 1, "candidates": 1, "steps": args.steps}, fractions=FRACTIONS).prepare()
    view, split = task.view("execution", "train"), task.splits["train"]
    shape = TaskShape(64, 10, args.steps, "cpu")
    generations = [workload(args.population, args.steps, g + 1) for g in range(args.generations)]
    print(f"workload: {args.generations} generations x {args.population} MLPs 64-{WIDTH}-10, "
          f"{args.steps} Adam steps of batch {BATCH}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    found = ways()
    anchors = False
    if args.anchors:
        try:
            import ray.tune  # noqa: F401

            anchors = True
        except ImportError:
            print("anchors skipped: Ray Tune is not installed here; "
                  "install it with `pip install 'ray[tune]==2.60.0'` (or drop --anchors)")
    if "ray" in found or anchors:  # Ray's start (~7 s) is not timed
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        logging.getLogger("ray").setLevel(logging.ERROR)  # Tune's per-trial warnings

    seconds: dict[str, float] = {}
    hand_loop(generations[0][:2], split.x, split.y)  # warm up, like every other way
    start = time.perf_counter()
    for candidates in generations:
        hand_loop(candidates, split.x, split.y)
    seconds["hand loop"] = time.perf_counter() - start
    for name, execution in found.items():
        execution.train(generations[0][:2], view, shape)  # warm up: pools start, kernels load
        start = time.perf_counter()
        for candidates in generations:
            execution.train(candidates, view, shape)
        seconds[name] = time.perf_counter() - start
        print(f"  {name}: {seconds[name]:.2f} s", file=sys.stderr, flush=True)
        if hasattr(execution, "close"):
            execution.close()  # frees its CPUs (Ray actors would keep Tune's trials waiting)

    ideal: dict[str, float] = {}  # single-threaded training time over the 2 workers
    parallel = 2
    if "ray" in found:
        serial_1 = sum(one_thread(Serial().train, c, view, shape) for c in generations)
        ideal["ray"] = serial_1 / parallel
    if anchors:
        hand_1 = sum(one_thread(hand_loop, c, split.x, split.y) for c in generations)
        for kind in ("fifo", "pbt"):
            seconds[f"tune {kind}"] = tune_anchor(kind, generations, split.x, split.y, args.steps)
            ideal[f"tune {kind}"] = hand_1 / parallel
            print(f"  tune {kind}: {seconds[f'tune {kind}']:.2f} s", file=sys.stderr, flush=True)

    peak = matmul_peak()
    flop = training_flop(args.population, args.steps) * args.generations
    print(f"{'way':<10} {'seconds':>8} {'speed-up vs hand loop':>22} {'GFLOP/s':>8} {'of peak':>8}")
    for name, t in seconds.items():
        print(f"{name:<10} {t:8.2f} {seconds['hand loop'] / t:21.2f}x {flop / t / 1e9:8.2f} {flop / t / 1e9 / peak:8.1%}")
    print(f"fp32 matmul peak measured here: {peak:.1f} GFLOP/s (1024x1024 torch.mm)")
    for name, t in ideal.items():
        reference = "serial" if name == "ray" else "hand loop"
        print(f"{name}: wall time over ideal training time = {seconds[name] / t:.2f} "
              f"({seconds[name]:.2f} s vs {t:.2f} s = 1-thread {reference} / {parallel} workers)")


if __name__ == "__main__":
    main()
