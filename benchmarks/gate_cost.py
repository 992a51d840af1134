"""What the oversight gate (and the held-out audit) cost: their share of a generation's wall time.

    python benchmarks/gate_cost.py [overrides...]      e.g.  gate=growing objective.budget.generations=5

Runs the real loop in-process (tracker off, into a temporary directory) and reads the engine's own
per-stage clock back from the ledger (`generation_finished`'s `seconds`): the gate's and the audit's
seconds against the generations' wall time. Ratios measured side by side in one run, never asserted.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from loop.ledger import read
from loop.tools.cli import run_experiment

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=["tracker=none", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(cfg, Path(tmp) / "run", say=lambda line: None)
        events = read(Path(tmp) / "run" / "ledger.jsonl")
    finished = [e for e in events if e.event == "generation_finished" and e.generation >= 1]
    reviews = sum(e.event in ("promoted", "vetoed", "paused") and e.generation >= 1 for e in events)
    seconds = {k: sum(e.detail["seconds"].get(k, 0.0) for e in finished) for k in ("gate", "audit", "total")}
    print(f"workload: default experiment {' '.join(overrides) or '(as shipped)'}")
    print(f"generations: {len(finished)}, gate reviews: {reviews}")
    print(f"generation wall time: {seconds['total']:.2f} s; gate: {seconds['gate']:.2f} s "
          f"({seconds['gate'] / reviews if reviews else 0:.3f} s per review); held-out audit: {seconds['audit']:.2f} s")
    print(f"gate share of generation wall time: {seconds['gate'] / seconds['total']:.1%}; "
          f"audit share: {seconds['audit'] / seconds['total']:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
