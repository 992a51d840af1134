"""Experiment trackers: where per-generation numbers go besides the ledger.

`tracker=wandb` (the default) writes an offline wandb run into `<run_dir>/wandb/`, no account
needed; `wandb sync <run_dir>/wandb/offline-run-*` uploads it later. `tracker=none` logs nothing.
wandb is imported only when a run starts with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

MODES = ("offline", "online", "disabled")


@dataclass
class NoTracker:
    """Log nothing. Selected with `tracker=none`."""

    def start(self, run_dir: Path, config: Mapping[str, Any], name: str) -> None:
        """Nothing to start: the ledger and the report hold everything."""

    def log(self, generation: int, metrics: Mapping[str, float]) -> None:
        """Nothing to log beyond the ledger."""

    def finish(self) -> None:
        """Nothing to close."""


@dataclass
class Wandb:
    """wandb, offline by default, inside the run directory. Selected with `tracker=wandb`."""

    project: str = "rsi-loop"
    mode: str = "offline"  # offline: no account or network; `wandb sync` later
    _run: Any = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"tracker.mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def start(self, run_dir: Path, config: Mapping[str, Any], name: str) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self._run = wandb.init(project=self.project, mode=os.environ.get("WANDB_MODE", self.mode),
                               dir=str(run_dir), config=dict(config), name=name, reinit="finish_previous")

    def log(self, generation: int, metrics: Mapping[str, float]) -> None:
        if self._run is not None:
            self._run.log({"generation": generation, **metrics}, step=generation)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
