"""Population training speed against a simple stacked loop, shape by shape, side by side in one run.

    python benchmarks/population.py                      # the issue-16 workload and the shape grid
    python benchmarks/population.py --shapes 1x128x16    # one shape: depth x width x population
    python benchmarks/population.py --device cuda --populations 32,256,1024   # (benchmarks/gpu.sh)
    python benchmarks/population.py --populations 1024 --ways batched --profile   # where batched's time goes

The anchor is what a careful user writes in 30 lines: P models as stacked weight tensors, one
`baddbmm` per layer, autograd for the backward pass and an elementwise Adam (`stacked_loop` below).
Every way trains the same P MLPs (ReLU, Adam, batch 128) on the digits train split with the same
batches; each is timed as the median of --repeats runs, interleaved, after one warm-up. Printed:
seconds per way, `batched` over `stacked` (<= 1.0: batched is no slower), the GFLOP/s each achieves
(2 x the multiply-adds of the matmuls a step needs: the forward pass, and per layer the weights'
gradient and, past the first layer, the input's) and that as a share of this machine's fp32 matmul
peak (a 1024 x 1024 product), measured in every round just before the ways run (the machine is
shared: its speed drifts between rounds): the median of the rounds' shares. Never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loop.execution.batched import Batched  # noqa: E402
from loop.objective.tasks import Digits  # noqa: E402
from loop.stages import Candidate, Genome, TaskShape  # noqa: E402

FRACTIONS = {"train": 0.5, "proxy": 0.15, "audit": 0.1, "probe": 0.125, "truth": 0.125}
BATCH, LR = 128, 3e-3
WORKLOAD = (2, 128, 16)  # the issue's: 64-128-128-10, P = 16
GRID = [(1, 8, 16), (1, 32, 16), (2, 64, 16), (2, 128, 16), (3, 128, 16), (2, 256, 16), (1, 256, 64),
        (2, 64, 1), (2, 64, 64), (3, 256, 32)]


def population(depth: int, width: int, p: int, steps: int, dtype: str = "float32") -> list[Candidate]:
    genome = Genome("mlp", {"depth": depth, "width": width, "activation": "relu", "dropout": 0.0},
                    {"optimizer": "adam", "lr": LR, "steps": steps, "batch_size": BATCH, "weight_decay": 0.0})
    return [Candidate(f"1.{i}", genome, None, 7000 + i) for i in range(p)]


def stacked_loop(depth: int, width: int, p: int, steps: int, x: torch.Tensor, y: torch.Tensor,
                 dtype: torch.dtype = torch.float32) -> float:
    """The anchor: stacked weights, baddbmm, autograd, elementwise Adam. Returns the last mean loss."""
    device = x.device
    sizes = [x.shape[1]] + [width] * depth + [10]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / n_in ** 0.5
        params.append((torch.rand(p, n_in, n_out, device=device) * 2 - 1).mul_(bound).requires_grad_())
        params.append((torch.rand(p, 1, n_out, device=device) * 2 - 1).mul_(bound).requires_grad_())
    m = [torch.zeros_like(t) for t in params]
    v = [torch.zeros_like(t) for t in params]
    index = torch.randint(len(y), (steps, p, BATCH), generator=torch.Generator().manual_seed(0)).to(device)
    for t in range(1, steps + 1):
        h = x[index[t - 1]]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for j in range(0, len(params) - 2, 2):
                h = torch.relu(torch.baddbmm(params[j + 1], h, params[j]))
            logits = torch.baddbmm(params[-1], h, params[-2])
        loss = F.cross_entropy(logits.float().flatten(0, 1), y[index[t - 1]].flatten())
        grads = torch.autograd.grad(loss * p, params)  # each model's own mean loss
        with torch.no_grad():
            for w, g, mi, vi in zip(params, grads, m, v):
                mi.mul_(0.9).add_(g, alpha=0.1)
                vi.mul_(0.999).addcmul_(g, g, value=0.001)
                w.sub_(LR / (1 - 0.9 ** t) * mi / ((vi / (1 - 0.999 ** t)).sqrt_().add_(1e-8)))
    return float(loss.detach())


def flops(depth: int, width: int, p: int, steps: int, inputs: int = 64) -> float:
    """The matmuls' floating-point operations: per layer the forward product and the weights' gradient,
    and the input's gradient for every layer but the first (nobody needs the data's gradient)."""
    macs = inputs * width + (depth - 1) * width * width + width * 10
    return 2 * (3 * macs - inputs * width) * BATCH * p * steps


def peak(device: torch.device, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - began) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        began = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=None,
                        help="depth x width x population, comma-separated (default: the workload and a grid)")
    parser.add_argument("--populations", default=None, help="P values for the workload's 64-128-128-10 instead")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="execution.dtype of batched (the anchor runs under autocast to the same dtype)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--ways", default="stacked,batched", help="which ways to time (default: stacked,batched)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="execution.chunk of batched: most models in one population (default: the plugin's, 32 on CPU, 1024 on GPU)")
    parser.add_argument("--profile", action="store_true",
                        help="then profile one batched run of the last shape (cProfile, top 20 by cumulative time)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    elif args.populations:
        shapes = [(WORKLOAD[0], WORKLOAD[1], int(p)) for p in args.populations.split(",")]
    else:
        shapes = [WORKLOAD] + [s for s in GRID if s != WORKLOAD]
    task = Digits(budget={"generations": 1, "candidates": 1, "steps": args.steps}, fractions=FRACTIONS).prepare()
    split = task.view("execution", "train")["train"]
    x, y = split.x.to(device), split.y.to(device)
    shape = TaskShape(64, 10, args.steps, args.device)
    batched = Batched(dtype=args.dtype, **({"chunk": args.chunk} if args.chunk else {}))
    dtype = getattr(torch, args.dtype)
    peaks = [peak(device)]
    print(f"{device}, {torch.get_num_threads()} threads; {args.steps} steps, batch {BATCH}, Adam, ReLU; batched dtype "
          f"{args.dtype}; median of {args.repeats}; fp32 matmul peak {peaks[0]:.0f} GFLOP/s at the start, then "
          f"measured in every round")
    chosen = args.ways.split(",")
    if not set(chosen) <= {"stacked", "batched"} or not chosen:
        raise SystemExit(f"--ways must name stacked and/or batched, got {args.ways!r}")
    print("| depth x width x P | " + " | ".join(f"{w} s" for w in chosen)
          + (" | batched / stacked" if len(chosen) == 2 else "")
          + " | " + " | ".join(f"{w} GFLOP/s" for w in chosen) + " | " + " | ".join(f"{w} of peak" for w in chosen)
          + " | " + " | ".join(f"{w} successors/s" for w in chosen) + " | peak GFLOP/s |")
    print("|---|" + "---:|" * (4 * len(chosen) + (len(chosen) == 2) + 1))
    for depth, width, p in shapes:
        candidates = population(depth, width, p, args.steps)
        ways = {"stacked": lambda: stacked_loop(depth, width, p, args.steps, x, y, dtype),
                "batched": lambda: batched.train(candidates, task.view("execution", "train"), shape)}
        ways = {name: ways[name] for name in chosen}
        for fn in ways.values():
            fn()  # warm-up
        times, peaks = {name: [] for name in ways}, []
        for _ in range(args.repeats):  # interleaved, so drifts in the machine's load hit both, and the peak
            peaks.append(peak(device))
            for name, fn in ways.items():
                times[name] += timed(fn, 1, device)
        median = {name: statistics.median(t) for name, t in times.items()}
        work = flops(depth, width, p, args.steps) / 1e9
        share = {name: statistics.median(work / t / top for t, top in zip(times[name], peaks)) for name in ways}
        cells = [f"{median[w]:.3f}" for w in chosen]
        if len(chosen) == 2:
            cells.append(f"{median['batched'] / median['stacked']:.2f}")
        cells += [f"{work / median[w]:.0f}" for w in chosen] + [f"{share[w]:.0%}" for w in chosen]
        cells += [f"{p / median[w]:.1f}" for w in chosen] + [f"{min(peaks):.0f}-{max(peaks):.0f}"]
        print(f"| {depth}x{width}x{p} | " + " | ".join(cells) + " |", flush=True)
    if args.profile:
        profile(lambda: (ways["batched"](), sync(device)), f"{depth}x{width}x{p}")


def profile(fn, name: str) -> None:
    """Where one call's time goes, by function (cumulative), the 20 largest."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(fn)
    print(f"\nprofile of one batched run, {name}:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()
