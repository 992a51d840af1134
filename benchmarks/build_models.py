"""How long building and seeding P models takes, with torch's default threads and with one, on this machine.

    python benchmarks/build_models.py [--populations 1024]

`batched` builds every candidate's model as `serial` would (seeded, then stacked), so that each starts
exactly where it would alone; on a GPU this CPU-side work is a visible part of a large population's time.
"""

from __future__ import annotations

import argparse
import time

import torch

from loop.execution.serial import seed_torch
from successors.mlp import build_mlp

ARCH = {"depth": 2, "width": 128, "dropout": 0.0, "activation": "relu"}


def build(p: int) -> float:
    began = time.perf_counter()
    for i in range(p):
        seed_torch(i)
        build_mlp(ARCH, 64, 10)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, default=1024)
    args = parser.parse_args()
    build(16)
    threads = torch.get_num_threads()
    for n in (threads, 1):
        torch.set_num_threads(n)
        best = min(build(args.populations) for _ in range(3))
        print(f"{args.populations} models of 64-128-128-10 built and seeded, {n} torch threads: {best:.3f} s "
              f"({best / args.populations * 1e3:.3f} ms each)")
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
