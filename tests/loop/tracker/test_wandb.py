"""`tracker=wandb`, offline: what a run leaves for wandb, read back from the run file `wandb sync` uploads."""

from __future__ import annotations

import base64
import hashlib
import json
import os

from conftest import ledger_events, run_loop
from loop.tracker.trackers import sweep_of
from wandb_records import of_kind, offline_run


def test_a_wandb_run_leaves_its_plots_its_ledger_and_each_promoted_successor_with_its_parent(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the suite runs wandb disabled; this test needs it on
    run_dir = tmp_path / "run"
    run_loop(run_dir, "tracker=wandb", "tracker.mode=offline")
    events = ledger_events(run_dir)
    offline = offline_run(run_dir)
    (run_file,) = offline.glob("*.wandb")

    plots = sorted(p.stem for p in (run_dir / "plots").glob("*.png"))
    logged = sorted(p.name.rsplit("_", 2)[0] for p in (offline / "files" / "media" / "images" / "plots").glob("*.png"))
    assert plots and logged == plots  # the report's plots, as images

    (table,) = (offline / "files" / "media" / "table").glob("ledger_*.table.json")
    found = json.loads(table.read_text())
    assert found["columns"] == ["seq", "generation", "event", "successor", "parent", "reasons", "metrics", "detail"]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in found["data"]] == [
        (e.seq, e.generation, e.event, e.successor or "", e.parent or "") for e in events]
    assert [json.loads(r[6]) for r in found["data"]] == [dict(e.metrics) for e in events]

    models = {a.name: a for a in of_kind(run_file, "artifact") if a.type == "model"}
    promoted = [e for e in events if e.event == "promoted"]
    final = next(e.successor for e in events if e.event == "run_finished")
    assert len(promoted) >= 2 and set(models) == {f"successor-{e.successor}" for e in promoted}
    for e in promoted:
        artifact = models[f"successor-{e.successor}"]
        meta = json.loads(artifact.metadata)
        assert (meta["successor"], meta["generation"], meta["parent"]) == (e.successor, e.generation, e.parent)
        assert meta["decision"] == "promoted" and meta["reasons"] == list(e.reasons) and meta["gate"] == dict(e.metrics)
        if e.parent is None:
            assert meta["parent_artifact"] is None and "baseline" in artifact.aliases
        else:  # greedy promotion: a parent is an earlier incumbent, so its artifact is in the run too
            assert meta["parent_artifact"] == f"successor-{e.parent}" and meta["parent_artifact"] in models
        assert ("incumbent" in artifact.aliases) == (e.successor == final)
        assert f"generation-{e.generation}" in artifact.aliases
        files = {entry.path: entry for entry in artifact.manifest.contents}
        assert set(files) == {f"{e.successor}.safetensors", f"{e.successor}.json"}
        for name, entry in files.items():  # the successor's own files, byte for byte (wandb's digest: base64 md5)
            data = (run_dir / "successors" / name).read_bytes()
            assert entry.digest == base64.b64encode(hashlib.md5(data).digest()).decode()
    staged = [p for p in (run_dir / "wandb").rglob("*") if p.is_file()]
    assert staged  # and nothing of it outside the run directory: wandb's data folder was the run's own
    assert "WANDB_DATA_DIR" not in os.environ


def test_a_runs_group_and_tags_come_from_its_sweep_and_overrides(tmp_path):
    sweep = tmp_path / "2026-11-26" / "10-00-00"
    (sweep / "3" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text("- seed=3\n- promotion=pareto\n")
    assert sweep_of(sweep / "3") == ("2026-11-26/10-00-00", ["seed=3", "promotion=pareto"])
    (tmp_path / "single" / ".hydra").mkdir(parents=True)  # a run of its own: no group
    assert sweep_of(tmp_path / "single") == (None, [])


def test_what_wandb_cannot_take_is_said_and_does_not_fail_a_finished_run(tmp_path, monkeypatch, capsys):
    from loop.tracker.trackers import Wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(Wandb, "log_outputs", lambda self, run_dir, events: (run_dir / "successors" / "x.json").read_text())
    state, _ = run_loop(tmp_path / "run", "tracker=wandb", "tracker.mode=offline", "objective.budget.generations=1")
    assert state.finished and (tmp_path / "run" / "report.md").is_file()
    assert "tracker=wandb: could not log the run's plots, ledger table or successors (FileNotFoundError: " \
        in capsys.readouterr().err
