"""The negative control of a sweep's arm comparison: one arm against itself on other seeds.

    python benchmarks/negative_control.py SWEEP SWEEP_OTHER_SEEDS [--where gate=probes] \\
        [--metric truth/regret] [--metric incumbent/truth] [--metric audit_slip_share]

Runs of the two sweeps that match `--where` are grouped by their other overrides (seed and `gate`
aside), paired in seed order (the first sweep's lowest seed with the other's lowest, ...), and each
metric's paired difference is printed with the 95% bootstrap interval the sweep reports use
(`loop.meta.utility.paired`). A metric is a key of the last `generation_finished` (e.g.
`truth/regret`, `incumbent/truth`), `audit_slip_share` (the share of promotions that regress on
the held-out audit), `final_compute` (parameters x steps of the final incumbent) or
`decision_accuracy` (the share of generations decided as the hidden truth would have), or, for
runs that measured error inheritance, `truth_drift`, `self_confirmation_index` and
`error_inheritance_excess` (`loop.tools.runs.self_confirmation`). The intervals should hold 0: if they do not, seed noise alone makes arms look
different and the arm comparison is not to be trusted.

    rsi-loop -m experiment=gate_pressure hydra.sweep.dir=multirun/pressure
    rsi-loop -m experiment=gate_pressure gate=probes seed=5,6,7,8,9 hydra.sweep.dir=multirun/pressure_neg
    python benchmarks/negative_control.py multirun/pressure multirun/pressure_neg --where gate=probes
    python benchmarks/negative_control.py multirun/me multirun/me --where promotion=map_elites \\
        --seeds 0,1,2,3,4 --other-seeds 5,6,7,8,9    # one sweep of 10 seeds, halves against each other
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def arms(sweep: Path, where: dict[str, str], seeds: list[str] | None = None) -> dict[str, list]:
    """{setting: runs in seed order} of the runs matching `where` (and among `seeds`, if given); the
    setting names the other overrides."""
    from loop.tools.compare import load

    out: dict[str, list] = {}
    for r in load(sweep):
        if all(r.overrides.get(k) == v for k, v in where.items()) and (seeds is None or r.seed in seeds):
            setting = " ".join(f"{k}={v}" for k, v in sorted(r.overrides.items()) if k not in ("seed", *where))
            out.setdefault(setting or "all runs", []).append(r)
    for runs in out.values():
        runs.sort(key=lambda r: int(r.seed) if r.seed.isdigit() else r.seed)
    return out


SELF_CONFIRMATION = {"truth_drift": "drift", "self_confirmation_index": "index", "error_inheritance_excess": "excess"}


def value(result, metric: str) -> float | None:
    if metric == "audit_slip_share":
        from loop.tools.pressure import rung_of

        return rung_of(result.seed, result.run).slip_rate
    if metric in ("final_compute", "decision_accuracy"):  # what the sweep report's promotion section compares
        return getattr(result, metric)
    if metric in SELF_CONFIRMATION:  # what its "Who judges" section compares (experiment=self_confirming)
        from loop.tools.runs import self_confirmation

        return getattr(self_confirmation(result.run), SELF_CONFIRMATION[metric], None)
    return result.final(metric)


def main() -> None:
    from loop.meta.utility import paired

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--where", action="append", default=[], help="key=value the runs must have overridden")
    parser.add_argument("--metric", action="append", default=[])
    parser.add_argument("--seeds", help="only these seeds of SWEEP (comma-separated), e.g. 0,1,2,3,4")
    parser.add_argument("--other-seeds", help="only these seeds of OTHER: with --seeds, one sweep can be both sides")
    args = parser.parse_args()
    where = dict(w.split("=", 1) for w in args.where)
    metrics = args.metric or ["truth/regret", "incumbent/truth"]
    first = arms(args.sweep, where, args.seeds.split(",") if args.seeds else None)
    second = arms(args.other, where, args.other_seeds.split(",") if args.other_seeds else None)
    print(f"negative control: {args.sweep} against {args.other} ({' '.join(args.where) or 'all runs'}), "
          "paired in seed order; mean [95% bootstrap interval] (pairs)")
    for setting in sorted(set(first) & set(second)):
        a, b = first[setting], second[setting]
        cells = []
        for metric in metrics:
            diffs = [x - y for x, y in ((value(r, metric), value(s, metric)) for r, s in zip(a, b))
                     if x is not None and y is not None]
            d = paired(diffs) if diffs else None
            cells.append(f"{metric} {d.show()} ({d.n}){'' if d.n < 2 or not d.excludes_zero else ' EXCLUDES 0'}"
                         if d else f"{metric} —")
        print(f"  {setting}: seeds {[r.seed for r in a]} vs {[r.seed for r in b]}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
