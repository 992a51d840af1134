"""Experiment trackers: where a run's numbers go besides the ledger.

`tracker=wandb` (the default) writes an offline wandb run into `<run_dir>/wandb/`, no account
needed; `wandb sync <run_dir>/wandb/offline-run-*` uploads it later. Besides one row of numbers per
generation it logs, once the run ends (or pauses): the report's plots as images, the ledger as a
table, and every promoted successor as a model artifact (weights and card) whose metadata names its
parent's artifact and the gate's decision. A sweep's runs share a group (the sweep directory), a
job type (their overrides less the seed) and tags (each override), so they compare side by side.
`tracker=none` logs nothing. wandb is imported only when a run starts with it.

A tracker is any object with `start(run_dir, config, name)`, `log(generation, metrics)` and
`finish()`; it may also have `publish(run_dir, events)`, which the engine calls after the report is
written and before `finish()`. What wandb cannot take (a file gone, a full disk) is said on stderr and
does not fail the run, which is whole in its ledger and report by then.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

MODES = ("offline", "online", "disabled")
TAG_LENGTH = 64  # wandb refuses longer tags


@dataclass
class NoTracker:
    """Log nothing. Selected with `tracker=none`."""

    def start(self, run_dir: Path, config: Mapping[str, Any], name: str) -> None:
        """Nothing to start: the ledger and the report hold everything."""

    def log(self, generation: int, metrics: Mapping[str, float]) -> None:
        """Nothing to log beyond the ledger."""

    def finish(self) -> None:
        """Nothing to close."""


def sweep_of(run_dir: Path) -> tuple[str | None, list[str]]:
    """The group and the overrides of a run: a Hydra multirun's job directory sits in the sweep
    directory, which holds `multirun.yaml`; the group is that directory (its last two parts, e.g.
    `2026-11-26/14-51-00`), None for a single run. Overrides come from the job's `.hydra/overrides.yaml`."""
    import yaml

    run_dir = Path(run_dir).resolve()
    group = "/".join(run_dir.parent.parts[-2:]) if (run_dir.parent / "multirun.yaml").exists() else None
    try:
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        overrides = []
    return group, [str(o) for o in overrides]


def ledger_rows(events: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """The ledger as a table: one row per event, its metrics and detail as JSON text."""
    columns = ["seq", "generation", "event", "successor", "parent", "reasons", "metrics", "detail"]
    rows = [[e.seq, e.generation, e.event, e.successor or "", e.parent or "", "\n".join(e.reasons),
             json.dumps(dict(e.metrics), sort_keys=True), json.dumps(dict(e.detail), sort_keys=True, default=str)]
            for e in events]
    return columns, rows


def promotions(events: Sequence[Any]) -> list[Any]:
    """The run's `promoted` events, each successor once (its first promotion), in ledger order."""
    seen, out = set(), []
    for e in events:
        if e.event == "promoted" and e.successor and e.successor not in seen:
            seen.add(e.successor)
            out.append(e)
    return out


def artifact_name(successor: str) -> str:
    return f"successor-{successor}"


@dataclass
class Wandb:
    """wandb, offline by default, inside the run directory. Selected with `tracker=wandb`."""

    project: str = "rsi-loop"
    mode: str = "offline"  # offline: no account or network; `wandb sync` later
    _run: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"tracker.mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def start(self, run_dir: Path, config: Mapping[str, Any], name: str) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        group, overrides = sweep_of(run_dir)
        arm = [o for o in overrides if not o.startswith(("seed=", "hydra"))]
        self._run = wandb.init(project=self.project, mode=os.environ.get("WANDB_MODE", self.mode),
                               dir=str(run_dir), config=dict(config), name=name, reinit="finish_previous",
                               group=group, job_type=(" ".join(arm) or "default")[:TAG_LENGTH],
                               tags=sorted({o[:TAG_LENGTH] for o in overrides}))

    def log(self, generation: int, metrics: Mapping[str, float]) -> None:
        if self._run is not None:
            self._run.log({"generation": generation, **metrics}, step=generation)

    def publish(self, run_dir: Path, events: Sequence[Any]) -> None:
        """The report's plots, the ledger as a table, and a model artifact per promoted successor."""
        if self._run is None or self._run.disabled:
            return
        run_dir = Path(run_dir)
        # wandb stages what it logs in a data folder (by default under the home directory): keep it in the run
        staging = os.environ.get("WANDB_DATA_DIR")
        os.environ["WANDB_DATA_DIR"] = staging or str(run_dir / "wandb" / "data")
        try:
            self.log_outputs(run_dir, events)
        except Exception as err:  # the run is whole in its ledger and report: what wandb cannot take must not fail it
            print(f"tracker=wandb: could not log the run's plots, ledger table or successors "
                  f"({type(err).__name__}: {err}); the run itself is complete in {run_dir}", file=sys.stderr)
        finally:
            if staging is None:
                del os.environ["WANDB_DATA_DIR"]

    def log_outputs(self, run_dir: Path, events: Sequence[Any]) -> None:
        import wandb

        plots = {f"plots/{png.stem}": wandb.Image(str(png)) for png in sorted((run_dir / "plots").glob("*.png"))}
        columns, rows = ledger_rows(events)
        self._run.log({**plots, "ledger": wandb.Table(columns=columns, data=rows)})
        promoted = promotions(events)
        final = next((e.successor for e in reversed(events) if e.event == "run_finished"), None)
        for e in promoted:
            self._run.log_artifact(self.model_artifact(run_dir, e), aliases=[
                f"generation-{e.generation}", *(["baseline"] if e.parent is None else []),
                *(["incumbent"] if e.successor == final else [])])

    def model_artifact(self, run_dir: Path, promoted: Any) -> Any:
        """A successor's weights and card as a wandb model artifact. Lineage: the metadata names the parent's
        artifact (offline, a run cannot `use_artifact` another, so wandb's graph holds no edge between two
        artifacts of one run); the gate's decision and its reasons ride along."""
        import wandb

        folder = run_dir / "successors"
        card = json.loads((folder / f"{promoted.successor}.json").read_text())
        artifact = wandb.Artifact(artifact_name(promoted.successor), type="model", metadata={
            "successor": promoted.successor, "generation": promoted.generation, "parent": promoted.parent,
            "parent_artifact": artifact_name(promoted.parent) if promoted.parent else None,
            "decision": promoted.event, "reasons": list(promoted.reasons), "gate": dict(promoted.metrics),
            "genome": card.get("genome"), "card": {k: v for k, v in card.items() if k != "genome"}},
            description=f"generation {promoted.generation}; parent "
                        + (artifact_name(promoted.parent) if promoted.parent else "none (the baseline)"))
        for suffix in (".safetensors", ".json"):
            # immutable: referenced where it lies (a successor's files never change), not copied to a staging folder
            artifact.add_file(str(folder / f"{promoted.successor}{suffix}"), policy="immutable")
        return artifact

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
