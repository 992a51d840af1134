"""A multirun's progress lines (`loop.tools.progress`): the total, and the line as a run ends."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from conftest import CONFIGS, run_loop
from loop.tools.progress import SweepProgress, clock, sweep_size


def hydra_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_the_total_is_the_product_of_the_swept_values_the_command_line_winning_per_key():
    cfg = hydra_config("experiment=gate_pressure")
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["experiment=gate_pressure"]
    assert sweep_size(cfg) == 2 * 5 * 5  # gate x candidates x seeds, from the experiment's sweeper params
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["experiment=gate_pressure", "seed=5,6,7", "gate=probes"]
    assert sweep_size(cfg) == 1 * 5 * 3


def test_clock_reads_minutes_and_hours():
    assert (clock(5), clock(75), clock(3725)) == ("0:05", "1:15", "1:02:05")


def test_a_line_per_finished_run_names_it_and_the_best_so_far(tmp_path, capsys):
    from hydra.types import RunMode

    for i, seed in enumerate((0, 1)):
        run_loop(tmp_path / str(i), f"seed={seed}", "objective.budget.generations=1")
        (tmp_path / str(i) / "report.md").write_text("written")
    cfg = hydra_config("experiment=quick")
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path / "1")
        cfg.hydra.overrides.task = ["experiment=quick", "seed=0,1"]
    progress = SweepProgress()
    progress.on_multirun_start(cfg)
    progress.on_job_end(cfg)
    line = capsys.readouterr().out.strip()
    assert line.startswith("sweep: 2/2 runs done; 1 (experiment=quick seed=0,1) final truth 0.")
    assert "; best so far 0." in line and "; elapsed 0:" in line and "left" not in line  # nothing left
