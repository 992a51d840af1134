"""Does successive halving of inner candidates pay? The improver gene `inner_halving`, measured as
every meta-utility is: fresh inner loops on paired seeds (the same task draw and inner seed in every
arm), imp@k of each arm minus the reference's, with a bootstrap interval of the mean over seeds.

Arms, all at experiment=recursive_improver's inner budget (compute 600 optimizer steps per inner
generation, k = 3): generation 0's improver (4 candidates, no halving; the reference), the same with
halving, and 8 candidates (what every final improver of the recursive_improver sweep chose) without
and with halving. The negative control is the reference against itself on other inner seeds (the same
task draws): it must come out null.

    python benchmarks/halving.py [--seeds 20] [--workers 2] [--out outputs/benchmarks/halving]

Prints a table; the inner loops' ledgers are kept under --out (rerunning reads them back).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAMILIES = ("digits_subset", "digits_permuted", "classification", "digits_noisy")  # objective=improvers' four
ARMS = {  # name: the improver genes that differ from generation 0's
    "4 candidates, halving": {"inner_halving": True},
    "8 candidates": {"candidates": 8},
    "8 candidates, halving": {"candidates": 8, "inner_halving": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="paired seeds (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the inner loops (default 2)")
    parser.add_argument("--generations", type=int, default=3, help="k of imp@k (default 3)")
    parser.add_argument("--compute", type=int, default=600, help="optimizer steps per inner generation (default 600)")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/halving"),
                        help="where the inner loops are kept (default outputs/benchmarks/halving)")
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir

    from loop.config import CONFIG_DIR
    from loop.meta.improver import Protocol, improver_config
    from loop.meta.utility import InnerLoops, imp_difference
    from loop.stages import Genome

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        source = compose("config", overrides=["tracker=none"])
        space = compose("config", overrides=["successor=improver"]).successor.init
    reference = Genome("improver", {}, dict(space.recipe), dict(space.generator))
    protocol = Protocol(families=FAMILIES, seeds=args.seeds, generations=args.generations)
    loops = InnerLoops(args.out)

    def run(genome: Genome, control: bool = False):
        return loops.run_many([improver_config(source, genome, protocol.task(i, control), args.generations, args.compute)
                               for i in range(args.seeds)], args.workers)

    began = time.perf_counter()
    base = run(reference)
    arms = {name: run(reference.replace(recipe=genes)) for name, genes in ARMS.items()}
    arms["negative control (reference, other inner seeds)"] = run(reference, control=True)
    print(f"{args.seeds} paired seeds over {', '.join(FAMILIES)}; imp@{args.generations} at {args.compute} steps "
          f"per inner generation; reference: generation 0's improver (4 candidates, no halving), "
          f"mean imp@{args.generations} {sum(r.imp(args.generations) for r in base) / len(base):+.4f}")
    print(f"| arm | imp@{args.generations} minus reference [95% CI] | area minus reference [95% CI] | "
          f"successors trained | optimizer steps |")
    print("|---|---:|---:|---:|---:|")
    print(f"| reference | 0 | 0 | {sum(r.trained for r in base)} | {sum(r.steps for r in base)} |")
    for name, runs in arms.items():
        imp, area = imp_difference(runs, base, args.generations), imp_difference(runs, base)
        print(f"| {name} | {imp.show()} ({imp.words()}) | {area.show()} | {sum(r.trained for r in runs)} | "
              f"{sum(r.steps for r in runs)} |")
    print(f"{loops.ran} inner loops run in {time.perf_counter() - began:.0f} s ({args.workers} workers); "
          f"the rest read back from {args.out}")


if __name__ == "__main__":
    main()
