"""bfloat16 against float32 on the default run: the speed-up of training and the cost in truth,
paired by seed, with the negative control (float32 against itself on other seeds).

    rsi-loop -m execution.dtype=float32,bfloat16 seed=0,1,2,3,4,5,6,7,8,9 tracker=none hydra.sweep.dir=multirun/dtype
    python benchmarks/dtype.py multirun/dtype

For each seed, bfloat16's final incumbent truth minus float32's, and its execution-stage seconds
(the ledger's own clock, summed over generations) over float32's; the negative control pairs
float32's first half of the seeds with its second half. Means with 95% bootstrap intervals
(`loop.meta.utility.paired`), as the sweep reports use. Never asserted.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def training_seconds(result) -> float:
    return sum(float(e.detail.get("seconds", {}).get("execution", 0.0)) for e in (g.finished for g in result.run.done))


def main() -> None:
    from loop.meta.utility import paired, seed_differences
    from loop.tools.compare import load

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    runs = load(Path(sys.argv[1]))
    by = {dtype: sorted((r for r in runs if r.overrides.get("execution.dtype") == dtype), key=lambda r: int(r.seed))
          for dtype in ("float32", "bfloat16")}
    full, low = by["float32"], by["bfloat16"]
    if not full or not low:
        raise SystemExit(f"{sys.argv[1]} needs runs with execution.dtype=float32 and =bfloat16")
    differences = seed_differences(low, full, lambda r: r.final("incumbent/truth"))
    truth = paired(differences)
    speed = {r.seed: training_seconds(r) for r in full}
    ratios = [speed[r.seed] / training_seconds(r) for r in low if r.seed in speed and training_seconds(r) > 0]
    half = len(full) // 2
    control = paired([a.final("incumbent/truth") - b.final("incumbent/truth") for a, b in zip(full[:half], full[half:])])
    print(f"{len(differences)} seeds paired")
    print(f"final truth, bfloat16 minus float32: {truth.show()} ({truth.words()})")
    print(f"negative control, float32 seeds {[r.seed for r in full[:half]]} minus {[r.seed for r in full[half:]]}: "
          f"{control.show()} ({control.words()})")
    print(f"training (execution stage) speed-up of bfloat16: median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} seeds; float32 median "
          f"{statistics.median(speed.values()):.2f} s a run")
    same = sum(1 for d in differences if d == 0)
    print(f"{same} of {len(differences)} seeds ended on exactly the same truth")


if __name__ == "__main__":
    main()
