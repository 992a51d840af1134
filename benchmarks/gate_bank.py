"""What one review of gate=growing costs as its bank of mined tests grows: banks of 10, 50 and 200
tests against gate=probes alone, side by side on the same honest pair of models.

    python benchmarks/gate_bank.py [--repeats 5] [--banks 10,50,200]

The bank is filled with distinct rules of the kinds the gate mines (labels, k-means clusters, noise,
blanked patches, FGSM from the baseline); each review then does what it does in a run: mines (the
library's rules not yet in the bank; at most one added, one retired), runs the fixed probes and
every banked test on the nominee, Holm over all. Each repeat reviews a fresh nominee id (nothing
cached for it; the incumbent's and baseline's readouts are cached, as in a run). Prints the median
seconds per review and its ratio to gate=probes; never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))


def rules(n: int) -> list[dict]:
    """n distinct mined-test rules for 8x8 digits."""
    found: list[dict] = [{"kind": "class", "label": c} for c in range(10)]
    found += [{"kind": "cluster", "k": k, "index": j, "seed": 0} for k in (8, 16) for j in range(k)]
    found += [{"kind": "occlusion", "size": 3, "row": r, "col": c} for r in range(6) for c in range(6)]
    found += [{"kind": "noise", "sigma": s, "seed": seed} for s in (0.2, 0.4) for seed in range(60)]
    found += [{"kind": "fgsm", "epsilon": e / 100} for e in range(2, 32, 2)]
    if n > len(found):
        raise SystemExit(f"at most {len(found)} distinct rules here, asked for {n}")
    return found[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--banks", default="10,50,200")
    args = parser.parse_args()

    import torch
    from hydra import compose, initialize_config_dir

    import redteam
    from loop.gate.growing import Growing, rule_hash
    from loop.gate.audit import NO_TRIPWIRES
    from loop.gate.gates import Probes
    from loop.stages import Candidate, Scored, Scores, Successor, TaskShape
    from loop.tools.cli import build_stages

    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        stages = build_stages(compose("config", overrides=["tracker=none"]))
    task = stages.objective.prepare()
    view = task.view("gate", "probe", "audit", "proxy")
    nominee_model, incumbent_model = (redteam.honest(task.splits["train"], 1000 + s) for s in range(2))

    def scored(model, sid: str) -> Scored:
        return Scored(Successor(sid, Candidate("1.0", redteam.GOOD, None, 0), model, {"parameters": 1}), Scores(0.9), 0.9)

    incumbent = scored(incumbent_model, "incumbent")

    def probes() -> Probes:
        return Probes(stages.gate.probes, tripwires=NO_TRIPWIRES)

    def timing(gate, label: str) -> float:
        gate.review(scored(nominee_model, f"{label}-warm"), incumbent, incumbent, view, [])  # caches incumbent
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            gate.review(scored(nominee_model, f"{label}-{i}"), incumbent, incumbent, view, [])
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    base = timing(probes(), "probes")
    print(f"gate=probes: {base:.3f} s per review ({len(stages.gate.probes)} probes)")
    for size in (int(b) for b in args.banks.split(",")):
        gate = Growing(probes(), bank_size=size, per_review=1)
        gate.check_task(TaskShape(64, 10, 400, "cpu", image=(8, 8), objective="digits"))
        for i, rule in enumerate(rules(size)):
            gate.bank.append({"name": f"bench{i}", "rule": rule, "sha256": rule_hash(rule), "secret": i % 2 == 1,
                              "tolerance": gate.tolerance, "fired": 0, "runs": 1})
        gate.added = size
        seconds = timing(gate, f"bank{size}")
        print(f"gate=growing, bank of {size:>3}: {seconds:.3f} s per review, {seconds / base:.2f}x gate=probes "
              f"(the bank ends at {len(gate.bank)} tests)")


if __name__ == "__main__":
    main()
