"""Many runs at once: N seed-runs of a small experiment three ways, side by side in one run.

    python benchmarks/many_runs.py [--seeds 16] [--experiment quick] [--repeats 3]

- `separate`: N `rsi-loop` commands one after another (what a shell loop pays: N start-ups);
- `-m basic`: one `rsi-loop -m ... seed=0,...,N-1` (Hydra's basic launcher: one start-up, one core);
- `-m processes`: the same with `hydra/launcher=processes` (2 worker processes of one torch
  thread, each started once and running whole runs in turn).

Prints the wall time of each, successors per second, the speed-up over `separate`, and whether
each run's ledger is the same across the three ways, event for event apart from clock readings (float
rounding may differ between a process of 2 torch threads and a worker of 1, as it may between
machines). Never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ledger(run: Path) -> list[dict]:
    """The run's events without wall-clock readings (`time`, a generation's stage `seconds`) and the
    hash chain over them."""
    events = []
    for line in (run / "ledger.jsonl").read_text().splitlines():
        event = {k: v for k, v in json.loads(line).items() if k not in ("time", "prev", "hash")}
        if isinstance(event.get("detail"), dict):
            event["detail"] = {k: v for k, v in event["detail"].items() if k != "seconds"}
        events.append(event)
    return events


def trained(run: Path) -> int:
    return sum(1 for e in ledger(run) if e["event"] == "trained")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--experiment", default="quick")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of the three ways, interleaved; the table gives medians, and each round's "
                             "speed-ups are listed (default 1)")
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    rsi = [sys.executable, "-m", "loop", f"experiment={args.experiment}", "tracker=none"]
    seeds = ",".join(map(str, range(args.seeds)))
    names = ("separate", "-m basic", "-m processes")
    with tempfile.TemporaryDirectory() as tmp:
        def ways(out: Path) -> dict:
            return {
                "separate": lambda: [subprocess.run([*rsi, f"seed={s}", f"hydra.run.dir={out}/separate/{s}"], env=env,
                                                    check=True, capture_output=True) for s in range(args.seeds)],
                "-m basic": lambda: subprocess.run([*rsi[:3], "-m", *rsi[3:], f"seed={seeds}",
                                                    f"hydra.sweep.dir={out}/basic"], env=env, check=True,
                                                   capture_output=True),
                "-m processes": lambda: subprocess.run([*rsi[:3], "-m", *rsi[3:], f"seed={seeds}",
                                                        "hydra/launcher=processes", f"hydra.sweep.dir={out}/processes"],
                                                       env=env, check=True, capture_output=True),
            }

        seconds: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.repeats):  # interleaved: a drift in the machine's load hits every way
            out = Path(tmp) / str(r)
            for name, fn in ways(out).items():
                began = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - began)
        # run dirs: separate/<seed>; a sweep's subdir is the job number, in seed order here
        out = Path(tmp) / "0"
        dirs = {"separate": [out / "separate" / str(s) for s in range(args.seeds)],
                "-m basic": [out / "basic" / str(s) for s in range(args.seeds)],
                "-m processes": [out / "processes" / str(s) for s in range(args.seeds)]}
        successors = sum(trained(d) for d in dirs["separate"])
        median = {name: statistics.median(times) for name, times in seconds.items()}
        print(f"{args.seeds} runs of experiment={args.experiment} ({successors} successors trained per way), "
              f"{os.cpu_count()} cores, median of {args.repeats}")
        print("| way | wall s | successors/s | speed-up over separate | each round's speed-up | "
              "ledgers equal to separate's |")
        print("|---|---:|---:|---:|---|---|")
        for name in names:
            same = sum(ledger(a) == ledger(b) for a, b in zip(dirs[name], dirs["separate"]))
            rounds = ", ".join(f"{a / b:.2f}x" for a, b in zip(seconds["separate"], seconds[name]))
            print(f"| {name} | {median[name]:.1f} | {successors / median[name]:.1f} | "
                  f"{median['separate'] / median[name]:.2f}x | {rounds} | {same} of {args.seeds} |")


if __name__ == "__main__":
    main()
