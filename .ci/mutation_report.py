"""Summarise a `mutmut run` (`make mutation`): the mutation score of each core module, and every
surviving mutant that docs/mutation.md does not list as equivalent.

    python .ci/mutation_report.py            # after `mutmut run`; writes mutants/report.md
    python .ci/mutation_report.py --check    # also exit 1 if a survivor is untriaged
    python .ci/mutation_report.py --sample 30   # print 30 not-yet-run mutants per module, drawn at random
    python .ci/mutation_report.py --only sample.txt   # the report of the mutants named there (a sample) alone

The score is over the mutants run so far: caught when a test failed or timed out on it; equivalent
mutants (listed with a reason in docs/mutation.md's table) are left out; a mutant that no test
reaches ("no tests") counts as not caught, and so does a worker that crashed or hung and was killed
("suspicious"); mutants not yet run are counted apart.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
TRIAGE = ROOT / "docs" / "mutation.md"
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "type check", None: "not checked"}


def results(mutants: Path) -> dict[str, str]:
    """Every mutant's status, by name (`loop.state.x_fold__mutmut_3`)."""
    found = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = STATUS.get(code, "suspicious")
    return found


def equivalent(triage: Path) -> dict[str, str]:
    """The triaged survivors: `| \\`mutant\\` | why it is equivalent |` rows of docs/mutation.md."""
    rows = re.findall(r"^\| `([\wǁ.]+__mutmut_\d+)` \| (.+?) \|$", triage.read_text(), re.M) if triage.exists() else []
    return dict(rows)


def sample(found: dict[str, str], k: int, seed: int) -> list[str]:
    """K mutants per module among those not yet run, drawn uniformly: a run of bounded time whose score
    estimates the module's (every mutant is equally likely to be drawn, whatever its cost)."""
    unrun: dict[str, list[str]] = defaultdict(list)
    for name, status in sorted(found.items()):
        if status == "not checked":
            unrun[module_of(name)].append(name)
    rng = random.Random(seed)
    return [name for module in sorted(unrun) for name in rng.sample(unrun[module], min(k, len(unrun[module])))]


def module_of(name: str) -> str:
    return name.split(".x_")[0].split(".xǁ")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a survivor is not triaged")
    parser.add_argument("--mutants", type=Path, default=MUTANTS, help="mutmut's working folder (default: mutants/)")
    parser.add_argument("--sample", type=int, metavar="K",
                        help="print the names of K not-yet-run mutants per module (a seeded random draw) and exit")
    parser.add_argument("--seed", type=int, default=0, help="the draw's seed (default 0)")
    parser.add_argument("--only", type=Path, metavar="FILE",
                        help="report only the mutants named in FILE, one per line (e.g. a --sample draw)")
    parser.add_argument("--triage", type=Path, default=TRIAGE, help="the equivalent mutants' table (docs/mutation.md)")
    args = parser.parse_args()
    found, triaged = results(args.mutants), equivalent(args.triage)
    if not found:
        raise SystemExit("no mutmut results under mutants/: run `make mutation` first")
    if args.sample is not None:
        print("\n".join(sample(found, args.sample, args.seed)))
        return 0
    if args.only is not None:
        named = {line.strip() for line in args.only.read_text().splitlines() if line.strip()}
        found = {name: status for name, status in found.items() if name in named}
    by_module: dict[str, Counter] = defaultdict(Counter)
    untriaged = []
    for name, status in found.items():
        if status == "survived" and name in triaged:
            status = "equivalent"
        elif status in ("survived", "no tests", "suspicious"):
            untriaged.append((name, status))
        by_module[module_of(name)][status] += 1
    lines = ["# Mutation testing", "", "| module | mutants | killed | timeout | survived | equivalent | no tests | "
             "not yet run | score |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total = Counter()
    for module, c in sorted(by_module.items()):
        total += c
        lines.append(row(module, c))
    lines += [row("**all**", total), "", f"{len(untriaged)} untriaged (survived, or reached by no test):", ""]
    lines += [f"- `{name}` ({status}): `mutmut show {name}`" for name, status in sorted(untriaged)] or ["_None._"]
    (args.mutants / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:len(by_module) + 5]))
    print(f"\n{len(untriaged)} untriaged; the full list: {args.mutants / 'report.md'}")
    return 1 if args.check and untriaged else 0


def row(module: str, c: Counter) -> str:
    """Counts and the score of the mutants run so far (a run can be stopped and continued)."""
    caught = c["killed"] + c["timeout"]
    counted = caught + c["survived"] + c["no tests"] + c["suspicious"]
    score = f"{100 * caught / counted:.1f}%" if counted else "—"
    return (f"| {module} | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['equivalent']} | "
            f"{c['no tests']} | {c['not checked']} | {score} |")


if __name__ == "__main__":
    raise SystemExit(main())
