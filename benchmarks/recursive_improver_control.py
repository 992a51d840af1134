"""The negative control of experiment=recursive_improver's arm comparison: the recursive arm against
itself on other outer seeds (seeds 0-4 of the sweep against seeds 5-9, paired in seed order), the
incumbent's held-out imp@k per outer generation, with the statistic the sweep report uses for the
arms (`loop.meta.utility.paired`). Its intervals should hold 0 (docs/recursion.md).

    rsi-loop -m experiment=recursive_improver hydra.sweep.dir=multirun/ri
    rsi-loop -m experiment=recursive_improver generator.steps_from=self seed=5,6,7,8,9 \\
        hydra.sweep.dir=multirun/ri_neg
    python benchmarks/recursive_improver_control.py multirun/ri multirun/ri_neg
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def arm(sweep: Path, steps_from: str) -> list[dict[int, float | None]]:
    """Held-out imp@k of the incumbent per outer generation, for each run of one arm, in seed order."""
    from omegaconf import OmegaConf

    from loop.ledger import read
    from loop.tools.runs import parse

    runs = []
    for run in sweep.iterdir():
        if (run / "ledger.jsonl").is_file():
            cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
            if cfg.generator.steps_from == steps_from:
                runs.append((int(cfg.seed), dict(parse(read(run / "ledger.jsonl")).series("incumbent/truth"))))
    return [series for _, series in sorted(runs)]


def main() -> None:
    from loop.meta.utility import paired

    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    first, other = arm(Path(sys.argv[1]), "self"), arm(Path(sys.argv[2]), "self")
    print(f"recursive arm, {len(first)} seeds against {len(other)} other seeds: held-out imp@k, paired in seed order")
    for g in sorted(set(first[0]) & set(other[0])):
        diff = paired([a[g] - b[g] for a, b in zip(first, other)])
        print(f"  generation {g}: {diff.show()}  {diff.words()}")


if __name__ == "__main__":
    main()
