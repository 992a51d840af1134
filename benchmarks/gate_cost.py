"""What the oversight gate costs: its share of a generation's wall time, on the default experiment.

    python benchmarks/gate_cost.py [overrides...]      e.g.  objective.budget.generations=5

Runs the real loop in-process (tracker off, into a temporary directory), timing every call of the
gate's `review` and every generation; prints the gate's share of the generations' wall time.
Ratios measured side by side in one run, never asserted in tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

import loop.engine
import loop.gate.gates
from loop.tools.cli import run_experiment

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def timed(cls, method: str, into: list[float]):
    original = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    setattr(cls, method, wrapper)


def main(overrides: list[str]) -> None:
    reviews: list[float] = []
    generations: list[float] = []
    timed(loop.gate.gates.Probes, "review", reviews)
    timed(loop.engine.Engine, "generation", generations)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=["tracker=none", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(cfg, Path(tmp) / "run", say=lambda line: None)
    gate, total = sum(reviews), sum(generations)
    print(f"workload: default experiment {' '.join(overrides) or '(as shipped)'}")
    print(f"generations: {len(generations)}, gate reviews: {len(reviews)}")
    print(f"generation wall time: {total:.2f} s; gate: {gate:.2f} s "
          f"({gate / len(reviews) if reviews else 0:.3f} s per review)")
    print(f"gate share of generation wall time: {gate / total:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
