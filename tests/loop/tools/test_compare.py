"""`loop.tools.compare`: the report across the runs of a sweep. A real tiny Hydra multirun (subprocess,
shared by the tests here), synthetic sweeps for grouping, generations-to-target, weak-to-strong
and the verdict sentences, and the errors a user gets for paths that are no sweep."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loop.tools.compare import (NOT_REACHED, BrokenRuns, Measure, SweepError, group, load, markdown, steps,
                          verdict,
                          write_sweep_report)
from loop.ledger import Ledger, read
from loop.tools.runs import blockers

from conftest import BIN, ROOT, TINY
from test_report import baseline, generation, section, start

PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    """`rsi-loop -m ... seed=0,1 gate=off,probes` into a temporary sweep dir, then its report."""
    where = tmp_path_factory.mktemp("multirun") / "sweep"
    done = cli("rsi-loop", "-m", *TINY, "seed=0,1", "gate=off,probes", f"hydra.sweep.dir={where}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = cli("rsi-loop-report", str(where))
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == str(where / "report.md")
    return where


def rows(text: str, title: str) -> list[str]:
    return [line for line in section(text, title).splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_multirun_report_groups_by_gate_and_links_every_run(sweep: Path) -> None:
    text = (sweep / "report.md").read_text()
    assert text.startswith("# rsi-loop sweep `sweep`")
    assert "4 runs in 2 groups" in text
    groups = rows(text, "Groups")
    assert [r.split(" | ")[0] for r in groups] == ["| `gate=off`", "| `gate=probes`"]
    assert all(r.split(" | ")[1] == "2" for r in groups)  # two seeds each
    gate = rows(text, "Gate on vs gate off")
    assert [r.split(" | ")[1] for r in gate] == ["`gate=off`", "`gate=probes`"]
    assert "- `all runs`: On truth regret (lower is better)" in section(text, "Gate on vs gate off")
    better = section(text, "Which group did better")
    assert "On final truth" in better and "generations to reach truth 0.95" in better
    assert "On decision accuracy in hindsight (the share of generations decided as the hidden truth" in better
    from loop.tools.runs import hindsight, parse

    # the column: each run's share of agreeing generations, median (min–max); jobs 0 and 2 ran gate=off
    for setting, runs in (("gate=off", ("0", "2")), ("gate=probes", ("1", "3"))):
        shares = sorted(sum(d.agrees for d in hindsight(parse(read(sweep / job / "ledger.jsonl")))) / 3 for job in runs)
        cell = next(r for r in groups if r.startswith(f"| `{setting}`")).split(" | ")[6]
        assert cell == (f"{shares[0]:.4f}" if shares[0] == shares[1] else
                        f"{sum(shares) / 2:.4f} ({shares[0]:.4f}–{shares[1]:.4f})")

    runs = rows(text, "Runs")
    assert len(runs) == 4
    for job in ("0", "1", "2", "3"):
        run_dir = sweep / job
        row = next(r for r in runs if r.startswith(f"| [`{job}`]({job}/report.md) |"))
        events = read(run_dir / "ledger.jsonl")
        overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
        gate = "gate=off" if "gate=off" in overrides else "gate=probes"
        seed = events[0].detail["seed"]
        finished = [e for e in events if e.event == "generation_finished"][-1]
        vetoes = [e for e in events if e.event == "vetoed"]
        pauses = [e for e in events if e.event == "paused"]
        cells = row.split(" | ")
        assert cells[1:3] == [f"`{gate}`", str(seed)]
        assert cells[4] == str(len([e for e in events if e.event == "generation_finished"]))
        assert cells[5] == f"{finished.metrics['incumbent/truth']:.4f}"
        assert cells[10] == f"{len(vetoes)} / {len(pauses)}"
        for e in vetoes + pauses:  # the probes named in the sweep table are those the gate's reasons name
            assert all(probe in cells[11] for probe in blockers(e))
        assert (run_dir / "report.md").is_file() and (run_dir / "plots" / "lineage.png").is_file()
    for png in ("truth.png", "proxy.png", "gap.png", "final.png"):
        assert (sweep / "plots" / png).read_bytes().startswith(PNG)


def test_multirun_report_is_rebuilt_identically(sweep: Path) -> None:
    before = (sweep / "report.md").read_text()
    assert write_sweep_report(sweep).read_text() == before


def test_real_run_gate_timeline_names_the_vetoing_probes(sweep: Path) -> None:
    for run_dir in sorted(p for p in sweep.iterdir() if (p / "ledger.jsonl").is_file()):
        text = (run_dir / "report.md").read_text()
        for e in read(run_dir / "ledger.jsonl"):
            if e.event == "vetoed":
                probes = blockers(e)
                assert probes and all(r.split(":")[0].split("/")[0] in probes
                                      for r in e.reasons if r.endswith(": regresses"))
                row = next(r for r in section(text, "Gate timeline").splitlines()
                           if r.startswith(f"| {e.generation} | vetoed | `{e.successor[:8]}` |"))
                assert row.endswith(f"| {', '.join(probes)} |")
                assert f"vetoed by {', '.join(probes)}" in section(text, "Lineage")


# --- synthetic sweeps ------------------------------------------------------------------------


def synthetic_run(run_dir: Path, overrides: list[str], truths: list[float], w2s: list[dict] | None = None) -> None:
    """A finished run whose incumbent is promoted every generation with these truths (proxy = truth
    + 0.02); `overrides` go to `.hydra/overrides.yaml` as Hydra writes them."""
    run_dir.mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    ledger = Ledger(run_dir / "ledger.jsonl")
    seed = int(next(o for o in overrides if o.startswith("seed=")).split("=")[1])
    start(ledger, len(truths) - 1, seed=seed)
    inc = baseline(ledger, truths[0] + 0.02, truths[0], sid=f"b{run_dir.name:0>15}")
    for g, truth in enumerate(truths[1:], start=1):
        prior = (truth + 0.02 - 0.01, truth - 0.01)
        extra = {"gap/incumbent": 0.02, "truth/regret": 0.0, **((w2s or [{}] * len(truths))[g - 1])}
        inc = generation(ledger, g, inc, prior, [(f"s{run_dir.name}{g:0>14}"[:16], truth + 0.02, truth)],
                         "promoted", extra=extra)


def test_groups_and_generations_to_target(tmp_path: Path) -> None:
    curves = {("fixed", 0): [0.80, 0.90, 0.93, 0.96], ("fixed", 1): [0.80, 0.88, 0.90, 0.92],
              ("self_adaptive", 0): [0.80, 0.95, 0.97, 0.98], ("self_adaptive", 1): [0.80, 0.92, 0.96, 0.97]}
    for i, ((generator, seed), truths) in enumerate(curves.items()):
        synthetic_run(tmp_path / "multirun" / "2026-01-01" / "10-00-00" / str(i),
                      ["experiment=recursion", f"generator={generator}", f"seed={seed}"], truths)
    sweep = tmp_path / "multirun"  # two levels above the runs, as `multirun/` is
    results = load(sweep)
    assert [r.name for r in results] == [f"2026-01-01/10-00-00/{i}" for i in range(4)]
    groups = group(results)
    assert list(groups) == ["generator=fixed", "generator=self_adaptive"]  # experiment= is shared, seed is not a group
    assert [r.reached(0.95) for r in groups["generator=fixed"]] == [3, NOT_REACHED]
    assert [r.reached(0.95) for r in groups["generator=self_adaptive"]] == [1, 2]

    text = write_sweep_report(sweep).read_text()
    fixed, adaptive = rows(text, "Groups")
    assert fixed.startswith("| `generator=fixed` | 2 | 0.9400 (0.9200–0.9600) |")
    assert "| not reached (3–not reached) | 1/2 |" in fixed  # the median of 3 and "not reached"
    assert "| 1.5 (1–2) | 2/2 |" in adaptive
    assert "Gate on vs gate off" not in text  # the groups do not differ by gate=
    better = section(text, "Which group did better")
    assert ("On final truth, `generator=self_adaptive` 0.9750 (0.9700–0.9800, n=2) did better than "
            "`generator=fixed` 0.9400 (0.9200–0.9600, n=2); the ranges over seeds do not overlap") in better
    assert "with fewer than 5 seeds per group no significance test is run" in better
    assert "`generator=self_adaptive` 1.5 (1–2, n=2) did better than `generator=fixed` not reached" in better
    assert "Mann-Whitney" not in better
    assert (sweep / "2026-01-01" / "10-00-00" / "0" / "report.md").is_file()
    lower = markdown("multirun", groups, target=0.9)  # --target changes what counts as reached
    assert "| 1.5 (1–2) | 2/2 |" in rows(lower, "Groups")[0]


def test_verdict_overlap_ties_and_rank_test() -> None:
    value = lambda v: v  # noqa: E731  (a verdict only needs one number per run)
    truth = Measure("final truth", value, higher_is_better=True)
    overlap = verdict({"a": [0.90, 0.95], "b": [0.91, 0.92]}, truth)
    assert "`a` 0.9250" in overlap and "within the seed spread" in overlap
    assert "are equal" in verdict({"a": [0.9, 0.9], "b": [0.9]}, truth)
    assert "nothing to compare" in verdict({"a": [0.9], "b": [None]}, truth)
    many = verdict({"a": [0.90, 0.91, 0.92, 0.93, 0.94], "b": [0.80, 0.81, 0.82, 0.83, 0.84]}, truth)
    assert "do not overlap" in many and "unlikely to be seed noise (two-sided p = 0.00794)" in many
    fewer = Measure("generations", value, higher_is_better=False, show=steps)
    ranked = verdict({"a": [3, 4, 5, NOT_REACHED, NOT_REACHED], "b": [1, 2, 2, 3, 3]}, fewer)
    assert "`b` 2 (1–3, n=5) did better than `a` 5 (3–not reached, n=5)" in ranked
    # the ranges overlap, yet the ranks say the difference is not seed noise: both are reported
    assert "the ranges over seeds overlap" in ranked and "unlikely to be seed noise (two-sided p = 0.0192)" in ranked
    even = verdict({"a": [0.90, 0.95, 0.91, 0.93, 0.92], "b": [0.91, 0.92, 0.90, 0.94, 0.915]}, truth)
    assert "within what seed noise gives" in even


def test_weak_to_strong_pgr_spread_with_undefined_counted_apart(tmp_path: Path) -> None:
    def w2s(pgr: float | None) -> dict:
        out = {"w2s/weak": 0.80, "w2s/student": 0.85, "w2s/ceiling": 0.90, "w2s/agreement": 0.9,
               "w2s/error_imitation": 0.4}
        return out if pgr is None else {**out, "w2s/pgr": pgr}

    synthetic_run(tmp_path / "0", ["experiment=weak_to_strong", "seed=0"], [0.8, 0.85, 0.86], [w2s(0.5), w2s(0.7)])
    synthetic_run(tmp_path / "1", ["experiment=weak_to_strong", "seed=1"], [0.8, 0.85, 0.86], [w2s(None), w2s(None)])
    synthetic_run(tmp_path / "2", ["experiment=weak_to_strong", "seed=2"], [0.8, 0.85, 0.86], [w2s(0.2), w2s(None)])
    text = write_sweep_report(tmp_path).read_text()
    (row,) = rows(text, "Weak-to-strong")
    # per run the median over its generations (0.6, undefined, 0.2); over seeds 0.4 (0.2–0.6)
    assert row == "| `all runs` | 3 | 0.4000 (0.2000–0.6000) | 1/3 | 3/6 | 0.9000 | 0.4000 |"
    assert [r.split(" | ")[-1] for r in rows(text, "Runs")] == ["0.6000 |", "undefined |", "0.2000 |"]
    single = (tmp_path / "2" / "report.md").read_text()
    assert "median (min–max): PGR 0.2000 where defined, 1 generations undefined" in single
    assert "| 2 | 0.8000 | 0.8500 | 0.9000 | undefined | 0.9000 | 0.4000 |" in section(single, "Weak-to-strong")


def test_paths_that_are_no_sweep_fail_clearly_and_delete_nothing(tmp_path: Path) -> None:
    missing = cli("rsi-loop-report", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and f"{tmp_path / 'nowhere'} does not exist" in missing.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "multirun.yaml").write_text("hydra: {}\n")
    (empty / "0" / ".hydra").mkdir(parents=True)  # a job that never wrote a ledger
    done = cli("rsi-loop-report", str(empty))
    assert done.returncode == 2
    assert f"{empty} is neither a run directory (no ledger.jsonl) nor a multirun directory" in done.stderr
    assert "multirun.yaml" in done.stderr
    assert sorted(p.name for p in empty.rglob("*")) == [".hydra", "0", "multirun.yaml"]

    with pytest.raises(SweepError, match="--target"):
        write_sweep_report(empty, target=1.5)

    broken = tmp_path / "broken"
    synthetic_run(broken / "0", ["gate=off", "seed=0"], [0.8, 0.9])
    synthetic_run(broken / "1", ["gate=probes", "seed=0"], [0.8, 0.9])
    ledger = broken / "1" / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"seq": 2', '"seq": 7')
    ledger.write_text("".join(lines))
    before = sorted(str(p.relative_to(broken)) for p in broken.rglob("*"))
    with pytest.raises(BrokenRuns, match=f"{broken / '1'}: ledger.jsonl line 3"):
        load(broken)
    done = cli("rsi-loop-report", str(broken))
    assert done.returncode == 1 and str(broken / "1") in done.stderr and "line 3" in done.stderr
    assert sorted(str(p.relative_to(broken)) for p in broken.rglob("*")) == before  # nothing written or deleted


def test_promotion_rules_are_compared_on_truth_compute_and_decisions_paired_by_seed(tmp_path: Path) -> None:
    """Real runs of promotion=greedy and =pareto on 2 seeds; the section's numbers recomputed from the ledgers."""
    from conftest import run_loop
    from loop.tools.runs import hindsight, parse

    sweep, job = tmp_path / "sweep", 0
    for seed in (0, 1):
        for rule in ("greedy", "pareto"):
            run = sweep / str(job)
            run_loop(run, f"promotion={rule}", f"seed={seed}", "gate=off")
            (run / ".hydra" / "overrides.yaml").write_text(f"- promotion={rule}\n- seed={seed}\n")
            job += 1
    text = markdown("sweep", group(load(sweep)), 0.95)
    lines = section(text, "Promotion rules compared").splitlines()

    def compute(run: Path) -> float:
        events = read(run / "ledger.jsonl")
        final = [e for e in events if e.event == "generation_finished"][-1].successor
        trained = next(e for e in events if e.event == "trained" and e.successor == final)
        return trained.metrics["compute"]

    diffs = [compute(sweep / str(j + 1)) - compute(sweep / str(j)) for j in (0, 2)]
    sentence = next(line for line in lines if "final compute of `promotion=pareto` minus `promotion=greedy`" in line)
    assert f"paired by seed (2 seeds): {sum(diffs) / 2:+,.0f} [" in sentence
    accuracy = [sum(d.agrees for d in hindsight(parse(read(sweep / str(j) / "ledger.jsonl")))) / 3 for j in range(4)]
    sentence = next(line for line in lines if "decision accuracy of `promotion=pareto` minus" in line)
    assert f"(2 seeds): {((accuracy[1] - accuracy[0]) + (accuracy[3] - accuracy[2])) / 2:+.4f}" in sentence
    row = next(line for line in lines if line.startswith("| `all runs` | `promotion=pareto` | 2 |"))
    low, high = sorted([compute(sweep / "1"), compute(sweep / "3")])
    assert row.split(" | ")[4] == (f"{low:,.0f}" if low == high else f"{(low + high) / 2:,.0f} ({low:,.0f}–{high:,.0f})")


def test_judges_are_compared_on_drift_self_confirmation_and_error_inheritance(tmp_path: Path) -> None:
    """Real runs of evaluator=self_judge and =accuracy on 2 seeds with error inheritance measured; the sweep
    section's and the run report's numbers recomputed from the ledgers."""
    from conftest import run_loop
    from loop.tools.report import write_report

    sweep, job = tmp_path / "sweep", 0
    for seed in (0, 1):
        for judge in ("self_judge", "accuracy"):
            run = sweep / str(job)
            run_loop(run, f"evaluator={judge}", f"seed={seed}", "gate=off", "error_inheritance=true")
            (run / ".hydra" / "overrides.yaml").write_text(f"- evaluator={judge}\n- seed={seed}\n")
            job += 1

    def measures(run: Path) -> tuple[float, float, float]:
        events = read(run / "ledger.jsonl")
        truth = {e.successor: e.metrics["truth"] for e in events if e.event == "evaluated"}
        finished = [e for e in events if e.event == "generation_finished"]
        rows = [e.metrics for e in events if e.event == "evaluated" and e.parent is not None]
        excess = sum(m["truth/error_inheritance"] - m["truth/error_base"] for m in rows) / len(rows)
        final = finished[-1]
        return (truth[final.successor] - truth[finished[0].successor],
                final.metrics["incumbent/proxy"] - final.metrics["incumbent/truth"], excess)

    lines = section(markdown("sweep", group(load(sweep)), 0.95), "Who judges: self-confirmation").splitlines()
    for i, name in enumerate(("truth drift", "self-confirmation index", "error inheritance above the base rate")):
        d = [measures(sweep / str(j))[i] - measures(sweep / str(j + 1))[i] for j in (0, 2)]
        sentence = next(line for line in lines if f"{name} of `evaluator=self_judge` minus `evaluator=accuracy`" in line)
        assert f"paired by seed (2 seeds): {sum(d) / 2:+.4f} [" in sentence
    report = write_report(sweep / "0").read_text()
    drift, index, _ = measures(sweep / "0")
    assert f"truth drift from generation 0 {drift:+.4f}; final self-confirmation index {index:+.4f}" in report
