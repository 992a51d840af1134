"""Training what the loop actually proposes: one run's generations replayed through each execution.

    python benchmarks/generations.py [--run-dir DIR] [--repeats 2] [--ways serial,batched]

The loop's candidates rarely share a shape (self-adaptive mutation moves width, depth, activation
and optimizer), so a same-shape population (benchmarks/execution.py) flatters batching. Here every
generation of a default run (`rsi-loop tracker=none`, run first into a temporary directory unless
--run-dir names a finished one) is trained again, candidate for candidate, with the same seeds and
the same parents' weights, by each execution in one process; best of --repeats is printed, with
the ratio to `serial`. Never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from loop.execution.batched import Batched
from loop.checkpoints import Checkpoints
from loop.config import instantiate
from loop.execution.serial import Serial
from loop.execution.inherit import uses_parent
from loop.ledger import read
from loop.stages import Candidate, Genome, TaskShape

WAYS = {"serial": Serial, "batched": Batched}


def generations(run_dir: Path) -> list[list[Candidate]]:
    """Each generation's candidates (generation 1 on) as the engine built them."""
    checkpoints = Checkpoints(run_dir)
    out: dict[int, list[Candidate]] = {}
    for e in read(run_dir / "ledger.jsonl"):
        if e.event != "proposed" or e.generation < 1:
            continue
        genome = Genome.from_dict(e.detail["genome"])
        parent = e.parent if e.parent and uses_parent(genome) else None
        extra = (Genome.from_dict(checkpoints.load_card(parent)["genome"]), checkpoints.load_arrays(parent)) \
            if parent else ()
        out.setdefault(e.generation, []).append(Candidate(e.detail["candidate"], genome, e.parent, e.detail["seed"],
                                                          *extra))
    return [out[g] for g in sorted(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="a finished default run (else one is run first)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, of {', '.join(WAYS)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or Path(tmp) / "run"
        if args.run_dir is None:
            subprocess.run([sys.executable, "-m", "loop", "tracker=none", f"hydra.run.dir={run_dir}"],
                           check=True, capture_output=True)
        replay = generations(run_dir)
        config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")  # the run's own objective and family
        task = instantiate(config.objective, "objective").prepare()
        shape, view = TaskShape.of(task, "cpu", family=config.successor.family), task.view("execution", "train")
        ways = {name: WAYS[name]() for name in args.ways.split(",")}
        for way in ways.values():
            way.train(replay[0][:2], view, shape)  # warm-up
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                for candidates in replay:
                    way.train(candidates, view, shape)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(f"{sum(map(len, replay))} candidates in {len(replay)} generations of a default run; best of {args.repeats}")
    for name, seconds in best.items():
        ratio = f"  {best['serial'] / seconds:.2f}x serial" if "serial" in best else ""
        print(f"  {name:<8} {seconds:6.2f} s{ratio}")


if __name__ == "__main__":
    main()
