"""Meta-utility: what fresh inner loops achieve with an improver frozen, and paired comparisons of it.

An inner loop is a real run of the engine (its own ledger, checkpoints and truth split) in a
temporary directory, in this process: no process start-up or imports per loop. What is kept is its
ledger (copied beside the measurement, so every number can be traced to the run that made it) and
its incumbent's truth after each generation.

- imp@k: the incumbent's truth after k inner generations minus generation 0's (the same baseline
  model for every improver on a seed: generation 0's genome, seed and task are shared);
- area: the mean of imp@1 .. imp@K, the area under the best-so-far truth curve;
- a paired difference: for seed i, an improver's imp@k minus the reference's on the same task draw
  and inner seed, with a bootstrap interval of the mean over seeds (`scipy.stats.bootstrap`).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from omegaconf import DictConfig

from loop.ledger import Event, canonical
from loop.meta.improver import Protocol, Snapshot, snapshot_config
from loop.state import settle

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 10_000


@dataclass(frozen=True)
class InnerRun:
    """One inner loop, read back from its ledger."""

    task: str  # the family draw, "wine#2"
    seed: int
    truth: tuple[float, ...]  # the incumbent's truth after generation 0, 1, ..., K
    trained: int  # successors trained (generation 0 included)
    steps: int  # optimizer steps over all of them
    seconds: float  # wall time of the loop
    ledger: str  # where its ledger was kept, relative to the measurement's folder

    @classmethod
    def from_dict(cls, data: dict) -> "InnerRun":
        """Read back what `dataclasses.asdict` wrote (JSON has no tuples)."""
        return cls(**{**data, "truth": tuple(data["truth"])})

    def imp(self, k: int) -> float:
        """imp@k: the truth gained by generation k over generation 0."""
        return self.truth[k] - self.truth[0]

    @property
    def area(self) -> float:
        """The mean of imp@1 .. imp@K: the area under the best-so-far curve, per generation."""
        return float(np.mean([self.imp(k) for k in range(1, len(self.truth))]))


def read_inner(events: Sequence[Event], seconds: float, ledger: str) -> InnerRun:
    settled = settle(events)
    finished = [settled.generations[g][-1] for g in sorted(settled.generations)]
    if not finished or not any(e.event == "run_finished" for e in settled.run):
        raise RuntimeError(f"the inner loop kept in {ledger} did not finish")
    trained = [e for g in settled.generations.values() for e in g if e.event == "trained"]
    started = next(e for e in settled.run if e.event == "run_started")
    return InnerRun(task=started.reasons[0].split("objective ")[1].split(",")[0], seed=int(started.detail["seed"]),
                    truth=tuple(float(e.metrics["incumbent/truth"]) for e in finished), trained=len(trained),
                    steps=int(sum(e.metrics.get("steps", 0) for e in trained)), seconds=round(seconds, 3),
                    ledger=ledger)


class InnerLoops:
    """Runs inner loops and keeps what they found in `folder` (`<folder>/inner/<key>.json` and the
    ledger beside it). A loop whose config was run before is read back, not rerun: the key is a hash
    of the whole config (and of the worker count, since threads can change float rounding), and the
    same config and seed give the same ledger."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "inner").mkdir(parents=True, exist_ok=True)
        self.ran = 0  # inner loops run by this object (not read back)

    def key(self, cfg: DictConfig, workers: int) -> str:
        import hashlib

        from omegaconf import OmegaConf

        wired = {"config": OmegaConf.to_container(cfg, resolve=True), **({"workers": workers} if workers > 1 else {})}
        return hashlib.sha256(canonical(wired).encode()).hexdigest()[:16]

    def run(self, cfg: DictConfig) -> InnerRun:
        return self.run_many([cfg])[0]

    def run_many(self, cfgs: Sequence[DictConfig], workers: int = 1) -> list[InnerRun]:
        """Each config's inner loop: read back if kept, else run (on `workers` processes) and kept."""
        from loop.checkpoints import atomic_write

        keys = [self.key(cfg, workers) for cfg in cfgs]
        todo: dict[str, DictConfig] = {}
        for key, cfg in zip(keys, cfgs):
            if key not in todo and not (self.folder / "inner" / f"{key}.json").is_file():
                todo[key] = cfg
        ledgers = [f"inner/{key}.ledger.jsonl" for key in todo]
        results = run_inners(list(todo.values()), workers, [self.folder / ledger for ledger in ledgers])
        for key, ledger, result in zip(todo, ledgers, results):
            atomic_write(self.folder / "inner" / f"{key}.json",
                         json.dumps({**asdict(result), "ledger": ledger}, indent=1).encode())
        self.ran += len(todo)
        return [InnerRun.from_dict(json.loads((self.folder / "inner" / f"{key}.json").read_text())) for key in keys]


def run_inner(cfg: DictConfig, keep: Path | None = None, after: Callable | None = None):
    """Run one inner loop in a temporary directory, in this process; copy its ledger to `keep`.
    With `after(engine, state)`, also return what it says of the finished loop while its
    checkpoints still exist (e.g. probes of its final incumbent): `(InnerRun, after's answer)`."""
    from loop.engine import Engine
    from loop.ledger import read
    from loop.tools.cli import prepare

    stages, task, device, config = prepare(cfg)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rsi-inner-") as tmp:
        engine = Engine(Path(tmp), stages, task, int(cfg.seed), device, config, say=lambda line: None)
        state = engine.run()
        answer = after(engine, state) if after is not None else None
        events = read(Path(tmp) / "ledger.jsonl")
        if keep is not None:
            shutil.copyfile(Path(tmp) / "ledger.jsonl", keep)
    run = read_inner(events, time.perf_counter() - began, str(keep or ""))
    return run if after is None else (run, answer)


# --- inner loops on worker processes ---------------------------------------------------------

_POOLS: dict[int, "ProcessPoolExecutor"] = {}


def _start_inner_worker() -> None:
    import os

    import torch

    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(1)  # small models: one thread per worker beats workers fighting over cores


def _run_wired(config: dict, keep: str | None) -> dict:
    from omegaconf import OmegaConf

    return asdict(run_inner(OmegaConf.create(config), Path(keep) if keep else None))


def run_inners(cfgs: Sequence[DictConfig], workers: int = 1, keep: Sequence[Path | None] | None = None
               ) -> list[InnerRun]:
    """Run inner loops in this process (`workers` 1), or on that many spawned worker processes of one
    torch thread each, started once and reused (imports are paid once per worker, not per loop);
    `keep`: where each one's ledger is copied. The inner loops are the same either way, up to the
    float rounding a different thread count can give."""
    keep = list(keep) if keep is not None else [None] * len(cfgs)
    if workers <= 1 or len(cfgs) <= 1:
        return [run_inner(cfg, path) for cfg, path in zip(cfgs, keep)]
    import atexit
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from omegaconf import OmegaConf

    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_start_inner_worker)
        atexit.register(pool.shutdown, cancel_futures=True)
    futures = [pool.submit(_run_wired, OmegaConf.to_container(cfg, resolve=True), str(path) if path else None)
               for cfg, path in zip(cfgs, keep)]
    return [InnerRun.from_dict(f.result()) for f in futures]


def measure(loops: InnerLoops, source: DictConfig, snapshot: Snapshot, protocol: Protocol,
            control: bool = False, progress: Callable[[int], None] = lambda n: None) -> list[InnerRun]:
    """The snapshot frozen into one inner loop per paired seed (`control`: the negative control's
    seeds), on `protocol.workers` processes; `progress(n)` after them."""
    runs = loops.run_many([snapshot_config(source, snapshot, protocol, i, control) for i in range(protocol.seeds)],
                          protocol.workers)
    progress(len(runs))
    return runs


@dataclass(frozen=True)
class Paired:
    """The mean over seeds of a paired difference (improver minus reference), with its interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def words(self) -> str:
        if self.n < 2:
            return "too few seeds to say"
        if self.low == self.high == self.mean == 0:
            return "identical on every seed"
        if not self.excludes_zero:
            return "no difference beyond seed noise"
        return "better" if self.mean > 0 else "worse"

    def show(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def paired(differences: Sequence[float], seed: int = 0) -> Paired:
    """The mean of `differences` with a percentile-bootstrap interval (`CONFIDENCE`, `BOOTSTRAP_ROUNDS`)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or np.all(d == d[0]):  # no spread: the bootstrap has nothing to resample
        mean = float(d.mean()) if len(d) else math.nan
        return Paired(mean, mean, mean, len(d))
    from scipy.stats import bootstrap

    ci = bootstrap((d,), np.mean, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_ROUNDS,
                   method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    return Paired(float(d.mean()), float(ci.low), float(ci.high), len(d))


def seed_differences(mine: Sequence[Any], theirs: Sequence[Any], value: Callable[[Any], float | None]) -> list[float]:
    """value(a) - value(b) for each run a of `mine` and the run b of `theirs` with the same `seed`,
    in `mine`'s order; a pair where either value is missing is left out."""
    by_seed = {r.seed: r for r in theirs}
    pairs = [(value(r), value(by_seed[r.seed])) for r in mine if r.seed in by_seed]
    return [a - b for a, b in pairs if a is not None and b is not None]


def paired_grid(differences: Sequence[Sequence[float]], seed: int = 0) -> Paired:
    """The mean of a runs x seeds grid of paired differences, with an interval that resamples both
    runs and seeds (a two-way bootstrap): the seeds are the same task draws in every run, so pooling
    the grid as if its cells were independent would make the interval too narrow."""
    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"a grid of paired differences must be runs x seeds, got shape {d.shape}")
    if d.shape[0] == 1:
        return paired(d[0], seed)
    if np.all(d == d.flat[0]):
        return Paired(float(d.flat[0]), float(d.flat[0]), float(d.flat[0]), d.size)
    rng = np.random.default_rng(seed)
    runs = rng.integers(0, d.shape[0], (BOOTSTRAP_ROUNDS, d.shape[0]))
    seeds = rng.integers(0, d.shape[1], (BOOTSTRAP_ROUNDS, d.shape[1]))
    means = np.array([d[np.ix_(r, s)].mean() for r, s in zip(runs, seeds)])
    alpha = (1 - CONFIDENCE) / 2
    return Paired(float(d.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), d.size)


def imp_difference(runs: Sequence[InnerRun], reference: Sequence[InnerRun], k: int | None = None) -> Paired:
    """Paired difference of imp@k (k=None: of the area) between two lists of runs on the same seeds."""
    if len(runs) != len(reference):
        raise ValueError(f"paired runs must match seed for seed: {len(runs)} against {len(reference)}")
    value = (lambda r: r.area) if k is None else (lambda r: r.imp(k))
    return paired([value(a) - value(b) for a, b in zip(runs, reference)])
