"""The pressure ladder's report (`loop/tools/pressure.py`, experiment=gate_pressure): a tiny real
ladder of runs, read back against their ledgers."""

from __future__ import annotations

import math

import pytest
import yaml

from conftest import compose_config, ledger_events
from loop.tools.compare import write_sweep_report
from loop.tools.pressure import gao_fit, kl_best_of_n


def test_kl_of_best_of_n_is_zero_for_one_and_grows_like_log_n():
    assert kl_best_of_n(1) == 0.0
    assert kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_best_of_n(16) == pytest.approx(math.log(16) - 15 / 16)


def test_the_gao_fit_recovers_a_known_curve_and_refuses_too_few_points():
    points = [(d, d * (0.3 - 0.1 * d)) for d in (0.0, 0.5, 1.0, 1.5, 2.0)]
    alpha, beta, r2 = gao_fit(points)
    assert (alpha, beta, r2) == pytest.approx((0.3, 0.1, 1.0))
    assert gao_fit(points[:2]) is None and gao_fit([(1.0, 0.1)] * 3) is None


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """gate=probes and growing x 1 and 3 candidates x seeds 0, 1: eight runs of one generation."""
    from omegaconf import OmegaConf

    from loop.tools.cli import run_experiment

    sweep = tmp_path_factory.mktemp("pressure")
    i = 0
    for gate in ("probes", "growing"):
        for n in (1, 3):
            for seed in (0, 1):
                overrides = [f"gate={gate}", f"objective.budget.candidates={n}", f"seed={seed}"]
                cfg = compose_config("experiment=gate_pressure", "objective.budget.generations=2",
                                     "objective.budget.steps=100", *overrides)
                run = sweep / str(i)
                (run / ".hydra").mkdir(parents=True)
                OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
                (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                run_experiment(cfg, run, False, say=lambda _: None)
                i += 1
    return sweep


def test_the_sweep_report_shows_the_ladder_with_the_ledgers_counts(ladder):
    report = write_sweep_report(ladder).read_text()
    section = report[report.index("## Pressure ladder: the gate under search"):]
    rows = {tuple(cells[1:3]): cells for cells in (
        [c.strip() for c in line.split("|")] for line in section.splitlines() if line.startswith("| ") and
        line.split("|")[2].strip().isdigit())}
    assert set(rows) == {(g, n) for g in ("probes", "growing") for n in ("1", "3")}
    for (gate, n), cells in rows.items():
        runs = [p for p in ladder.iterdir() if (p / "ledger.jsonl").is_file() and f"gate={gate}" in (p / ".hydra" / "overrides.yaml")
                .read_text() and f"candidates={n}\n" in (p / ".hydra" / "overrides.yaml").read_text()]
        events = [ledger_events(p) for p in runs]
        reviews = [sum(e.event in ("promoted", "vetoed", "paused") and e.generation >= 1 for e in ev) for ev in events]
        promoted = [[e for e in ev if e.event == "audited" and e.reasons[0].startswith("promoted")] for ev in events]
        slipped = sum(bool(e.metrics["audit/regressed"]) for p in promoted for e in p)
        assert cells[3] == f"{math.sqrt(kl_best_of_n(int(n))):.3f}" and cells[4] == "2"
        assert cells[5].split(" ")[0] == f"{sum(reviews) / 2:.3f}"
        assert cells[7] == f"{slipped} of {sum(map(len, promoted))}"
    assert "- probes: " in section and "- growing: " in section
    assert "`growing` minus `probes`, paired by seed at each n" in section
    assert (ladder / "plots" / "pressure.png").stat().st_size > 10_000
    gates = report[report.index("## Gate on vs gate off"):report.index("## Pressure ladder")]
    assert gates.count("- truth regret of `gate=growing` minus `gate=probes`, paired by seed (2 seeds): ") == 2
