"""Where the default run's wall time goes, from the outside: the whole `rsi-loop` command, as a user
types it, split into what comes before the loop, the generations (training and the other stages),
the report, and the exit. Also its peak resident memory.

    python benchmarks/default_run.py [--repeats 3] [overrides...]     e.g.  tracker=wandb

Each repeat runs `python -m loop <overrides>` in a fresh process, into a temporary directory
(`tracker=none` unless the overrides name a tracker; wandb runs offline). The phases come from the ledger's own clock (`run_started`, every `generation_finished`
with its stage seconds, `run_finished`) and the report's file time; "training" is the execution
stage's time. Medians over the repeats are printed; never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def phases(run_dir: Path, started: float, ended: float) -> dict[str, float]:
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    finished = [e for e in events if e["event"] == "generation_finished"]
    first, last = events[0]["time"], events[-1]["time"]
    generations = sum(e["detail"]["seconds"]["total"] for e in finished)
    training = sum(e["detail"]["seconds"]["execution"] for e in finished)
    report = (run_dir / "report.md").stat().st_mtime
    return {
        "start-up (imports, config, data)": first - started,
        "training (execution stage)": training,
        "other stages (gate, evaluators, checkpoints, ...)": generations - training,
        "loop outside the generations (tracker, ledger)": (last - first) - generations,
        "report and plots": report - last,
        "exit": ended - report,
        "whole command": ended - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, overrides = parser.parse_known_args()
    env = dict(os.environ, WANDB_MODE=os.environ.get("WANDB_MODE", "offline"))
    if not any(o.startswith("tracker=") for o in overrides):
        overrides = ["tracker=none", *overrides]
    runs: list[dict[str, float]] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            started = time.time()
            subprocess.run([sys.executable, "-m", "loop", *overrides, f"hydra.run.dir={run_dir}"],
                           check=True, capture_output=True, env=env)
            runs.append(phases(run_dir, started, time.time()))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    whole = median["whole command"]
    print(f"`rsi-loop {' '.join(overrides)}`: median of {args.repeats} runs")
    for name, seconds in median.items():
        print(f"  {name:<52} {seconds:6.2f} s  {seconds / whole:6.1%}")
    print(f"  everything but training: {1 - median['training (execution stage)'] / whole:.1%} of the wall time")
    print(f"  peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
