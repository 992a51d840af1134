"""Inner loops per minute: what one level up (rsi-loop-transfer, experiment=recursive_improver) pays
per inner loop, three ways side by side on the same inner configs: one at a time in this process
(`loop.meta.utility.run_inners`, workers 1), on 2 long-lived worker processes of one torch thread
each (workers 2), and a fresh `rsi-loop` process per loop (what a driver script that shells out
would pay: interpreter start-up, imports, config composition, the report).

    python benchmarks/inner_loops.py [--loops 6] [--family classification]

Prints loops per minute for each way and their ratio; never asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=8, help="inner loops per way (default 8)")
    parser.add_argument("--family", default="classification", help="the task family they run on")
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from loop.config import CONFIG_DIR
    from loop.meta.improver import Protocol, Snapshot, snapshot_config
    from loop.meta.utility import run_inner, run_inners

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        source = compose("config", overrides=["tracker=none"])
    protocol = Protocol(families=(args.family,), seeds=max(args.loops, 2), generations=3, candidates=4, steps=150)
    snapshot = Snapshot("generation 0", dict(source.successor.init.generator))
    configs = [snapshot_config(source, snapshot, protocol, i) for i in range(args.loops)]

    run_inner(configs[0])  # warm: first-call costs (lazy imports, sklearn data) paid once, as in a real measurement
    began = time.perf_counter()
    for cfg in configs:
        run_inner(cfg)
    in_process = time.perf_counter() - began

    run_inners(configs[:2], workers=2)  # start the 2 workers (their imports), as a run's first generation does
    began = time.perf_counter()
    run_inners(configs, workers=2)
    workers = time.perf_counter() - began

    env = {**os.environ, "WANDB_MODE": "disabled"}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(configs):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            OmegaConf.save(cfg, folder / "inner.yaml")
            done = subprocess.run([sys.executable, "-m", "loop", "--config-dir", str(folder), "--config-name", "inner",
                                   f"hydra.run.dir={folder / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"rsi-loop failed on inner loop {i}: {done.stderr[-1500:]}")
    processes = time.perf_counter() - began

    per_minute = lambda seconds: 60 * args.loops / seconds  # noqa: E731
    print(f"{args.loops} inner loops on {args.family} (3 generations x 4 candidates, at most 150 steps each):")
    print(f"  in this process (run_inner):     {per_minute(in_process):6.1f} loops/min ({in_process / args.loops:.2f} s each)")
    print(f"  on 2 worker processes:           {per_minute(workers):6.1f} loops/min ({workers / args.loops:.2f} s each)")
    print(f"  one rsi-loop process per loop:   {per_minute(processes):6.1f} loops/min ({processes / args.loops:.2f} s each)")
    print(f"  in-process vs a process per loop: {processes / in_process:.1f}x; 2 workers vs in-process: "
          f"{in_process / workers:.2f}x")


if __name__ == "__main__":
    main()
