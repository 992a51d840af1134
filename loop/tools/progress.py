"""Progress of a multirun (`rsi-loop -m ...`): a Hydra callback (`configs/hydra/default.yaml`) that
prints one line as each run ends: runs done of the total, that run's overrides and final truth, the
best final truth so far and which run holds it, the elapsed time and an estimate of what is left.

Counts are read from the sweep directory (runs whose report is written), so they hold with any
launcher; the total is the product of the sweep's value lists (the config's `hydra.sweeper.params`
and the command line's, the command line winning per key). At a terminal the line is styled with
rich; otherwise (a pipe, a log file, CI) it is plain text, one line per run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def sweep_size(config: DictConfig) -> int | None:
    """How many runs the basic sweeper launches: the product of each swept key's value count."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else dict(params)
    by_key = {str(k): f"{k}={v}" for k, v in params.items()}
    for item in config.hydra.overrides.task:
        by_key[str(item).split("=", 1)[0].lstrip("+~")] = str(item)
    try:
        parsed = OverridesParser.create().parse_overrides(list(by_key.values()))
    except Exception:  # a sweeper or syntax this reader does not know: no total, still progress
        return None
    return math.prod(len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in parsed)


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def final_truth(run_dir: Path) -> float | None:
    """The last finished generation's incumbent truth, from the run's ledger."""
    from loop.ledger import LedgerError, read

    try:
        events = read(run_dir / "ledger.jsonl")
    except (OSError, LedgerError):
        return None
    finished = [e for e in events if e.event == "generation_finished"]
    return finished[-1].metrics.get("incumbent/truth") if finished else None


class SweepProgress(Callback):
    """One line per finished run of a multirun. Selected in `configs/hydra/default.yaml`."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.start = time.monotonic()
        self.truths: dict[Path, float | None] = {}  # finished runs read so far: each ledger read once

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.total, self.start = sweep_size(config), time.monotonic()

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep = Path(config.hydra.sweep.dir)
        runs = sorted(p.parent for p in sweep.glob("*/report.md"))
        self.truths |= {p: final_truth(p) for p in runs if p not in self.truths}
        truths = {p: self.truths[p] for p in runs}
        mine = Path(config.hydra.runtime.output_dir)
        best = max((p for p in truths if truths[p] is not None), key=lambda p: truths[p], default=None)
        total = self.total if self.total is not None else sweep_size(config)
        elapsed = time.monotonic() - self.start
        left = (f", ~{clock(elapsed / len(runs) * (total - len(runs)))} left"
                if total and runs and total > len(runs) else "")
        overrides = " ".join(str(o) for o in config.hydra.overrides.task if not str(o).startswith("hydra."))
        truth = truths.get(mine)
        line = (f"sweep: {len(runs)}/{total or '?'} runs done; {mine.name} ({overrides or 'no overrides'}) "
                f"final truth {'—' if truth is None else f'{truth:.4f}'}; best so far "
                f"{'—' if best is None else f'{truths[best]:.4f} ({best.name})'}; elapsed {clock(elapsed)}{left}")
        self.say(line)

    @staticmethod
    def say(line: str) -> None:
        if sys.stdout.isatty() and not os.environ.get("CI"):
            from rich.console import Console

            Console().print(f"[bold cyan]{line}[/]", highlight=False)
        else:
            print(line, flush=True)
