"""Execution across processes or a Ray cluster: `execution=serial`'s work, spread out.

Both plugins run `loop.execution.serial.train_candidate` on each candidate, exactly as `Serial` does, so
the same candidates give the same successor ids, train metrics and quarantine reasons; only where
the training happens changes.

- `execution=processes`: a pool of local worker processes (one thread each).
- `execution=ray`: long-lived Ray actors, on this machine or a cluster (`execution.address=auto`).

What crosses a process boundary is plain data: a `Genome` holds read-only mappings that do not
pickle, and a trained model travels as numpy arrays and is rebuilt in the parent.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from loop.checkpoints import weights_of
from loop.execution.serial import attempt, check_time_limit, quarantine_reason
from loop.stages import Candidate, DataView, Genome, Quarantined, Split, Successor, TaskShape
from successors import build

# A candidate as plain data: (key, genome dict, parent, seed, parent genome dict, parent weights);
# the last two are None unless the genome inherits or distils from the incumbent.
Wire = tuple[str, dict[str, Any], "str | None", int, "dict[str, Any] | None", "dict[str, np.ndarray] | None"]
# What one training sends back: ("trained", id, weights, train metrics, inherited) or ("quarantined", reason).
Outcome = tuple[Any, ...]


def to_wire(candidate: Candidate) -> Wire:
    parent_genome = candidate.parent_genome.to_dict() if candidate.parent_genome is not None else None
    weights = dict(candidate.parent_weights) if candidate.parent_weights is not None else None
    return candidate.key, candidate.genome.to_dict(), candidate.parent, candidate.seed, parent_genome, weights


def train_wired(wire: Wire, split: Split, shape: TaskShape, time_limit_s: float) -> Outcome:
    """Train one candidate as `Serial` does, quarantine reasons word for word, and answer in plain
    data that pickles."""
    key, genome, parent, seed, parent_genome, parent_weights = wire
    candidate = Candidate(key, Genome.from_dict(genome), parent, seed,
                          Genome.from_dict(parent_genome) if parent_genome is not None else None, parent_weights)
    result = attempt(candidate, split, shape, time_limit_s)
    if isinstance(result, Quarantined):
        return ("quarantined", result.reason)
    return ("trained", result.id, weights_of(result.model), dict(result.train), result.inherited)


def rebuild(candidate: Candidate, outcome: Outcome, shape: TaskShape) -> Successor | Quarantined:
    """Turn a worker's answer back into the record `Serial` would have returned."""
    if outcome[0] == "quarantined":
        return Quarantined(candidate, outcome[1])
    _, sid, weights, train, inherited = outcome
    model = build(candidate.genome, shape)
    # np.array copies: arrays from Ray's object store are read-only, torch wants writable memory
    model.load_state_dict({name: torch.from_numpy(np.array(array)) for name, array in weights.items()})
    model.eval()  # as train_candidate leaves it
    return Successor(sid, candidate, model, train, inherited)


def split_arrays(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """The train split as numpy: pickles without torch's shared-memory file handles."""
    return split.x.detach().cpu().numpy(), split.y.detach().cpu().numpy()


def split_from_arrays(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)))


def check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"execution.{name} must be a whole number >= 1, got {value!r}")


# --- processes ------------------------------------------------------------------------------

# Set once in each worker process by its initializer (never in the parent): the train split, so
# it is sent to a worker once rather than with every candidate.
_worker_split: Split | None = None


def _start_worker(x: np.ndarray, y: np.ndarray) -> None:
    global _worker_split
    torch.set_num_threads(1)  # tiny models: one thread per worker beats workers fighting over cores
    _worker_split = split_from_arrays(x, y)


def _train_in_worker(wire: Wire, shape: TaskShape, time_limit_s: float) -> Outcome:
    assert _worker_split is not None, "worker started without its train split"
    return train_wired(wire, _worker_split, shape, time_limit_s)


@dataclass
class Processes:
    """Train candidates in parallel in local worker processes. Selected with `execution=processes`.

    The pool is kept across generations (a spawned worker needs a few seconds to import torch,
    which would otherwise be paid every generation) and rebuilt only when the train split changes
    or a worker died; it is shut down when this object is collected or the interpreter exits.
    """

    workers: int = 2  # processes, one thread each; at most the number of cores is sensible
    time_limit_s: float = 60.0  # per candidate; past it the candidate is quarantined

    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    _pool_split: Split | None = field(default=None, init=False, repr=False, compare=False)
    _finalizer: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_count("workers", self.workers)
        check_time_limit(self.time_limit_s)

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        split = data["train"]
        if not candidates:
            return []
        def submit() -> list[Future]:
            pool = self._pool_for(split)
            return [pool.submit(_train_in_worker, to_wire(c), task, self.time_limit_s) for c in candidates]

        try:
            futures = submit()
        except BrokenProcessPool:  # a worker died while idle, between generations: start afresh
            self.close()
            futures = submit()
        results: list[Successor | Quarantined] = []
        broken = False
        for candidate, future in zip(candidates, futures):
            try:
                outcome = future.result()
            except BrokenProcessPool as err:  # a worker died (killed, out of memory): every
                broken = True                   # candidate it still held is lost with it
                outcome = ("quarantined", f"its worker process died while training ({err})")
            except Exception as err:  # e.g. an answer that failed to unpickle
                outcome = ("quarantined", quarantine_reason(err))
            results.append(rebuild(candidate, outcome, task))
        if broken:
            self.close()  # the next generation starts a fresh pool
        return results

    def _pool_for(self, split: Split) -> ProcessPoolExecutor:
        if self._pool is not None and self._pool_split is split:
            return self._pool
        self.close()
        # spawn, not fork: forking a parent that has started torch's threads can deadlock
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=split_arrays(split))
        self._pool, self._pool_split = pool, split
        self._finalizer = weakref.finalize(self, pool.shutdown, wait=True, cancel_futures=True)
        return pool

    def close(self) -> None:
        """Shut the worker processes down now (they also go when this object does)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._pool_split = self._finalizer = None


# --- ray ------------------------------------------------------------------------------------


class RayTrainer:
    """One Ray actor's work: train a contiguous chunk of candidates, one after another."""

    def __init__(self) -> None:
        torch.set_num_threads(1)  # an actor holds one CPU (or less); one thread uses it best

    def train(self, wires: list[Wire], arrays: tuple[np.ndarray, np.ndarray], shape: TaskShape,
              time_limit_s: float) -> list[Outcome]:
        split = split_from_arrays(*arrays)
        return [train_wired(wire, split, shape, time_limit_s) for wire in wires]


def chunks(items: Sequence[Any], n: int) -> list[list[Any]]:
    """`items` cut into at most `n` contiguous, non-empty chunks whose sizes differ by at most one."""
    n = min(n, len(items))
    if n == 0:
        return []
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


@dataclass
class Ray:
    """Train candidates on long-lived Ray actors, here or on a cluster. Selected with
    `execution=ray` (join a running cluster with `execution.address=auto`); needs
    `pip install 'rsi-loop[ray]'`.

    Ray is started once per process, at the first `train` (a cluster is joined at once, so a wrong
    address fails before the run starts), and the actors are kept across generations; Ray itself
    is shut down when the process exits.
    """

    actors: int = 2  # each takes one CPU and trains a contiguous chunk of the candidates
    address: str | None = None  # None: start a private local Ray; "auto": join this machine's cluster
    time_limit_s: float = 60.0  # per candidate; past it the candidate is quarantined

    _actors: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_count("actors", self.actors)
        check_time_limit(self.time_limit_s)
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(f"execution.address must be null (start a local Ray), 'auto' or a "
                             f"cluster address such as 'ray://head:10001', got {self.address!r}")
        if importlib.util.find_spec("ray") is None:
            raise ValueError("execution=ray needs Ray, which is not installed here: "
                             "pip install 'rsi-loop[ray]' (or pick execution=serial or processes)")
        if self.address is not None:  # join now, so a wrong address fails before the run writes anything
            try:
                self._ray()
            except Exception as err:  # ConnectionError, ValueError, ...: Ray's own words, last line
                why = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                raise ValueError(f"execution.address={self.address!r}: cannot join a Ray cluster there "
                                 f"({why}); start one with `ray start --head`, or use "
                                 f"execution.address=null for a local Ray") from None

    def train(self, candidates: Sequence[Candidate], data: DataView,
              task: TaskShape) -> list[Successor | Quarantined]:
        split = data["train"]
        if not candidates:
            return []
        ray = self._ray()
        actors = self._actors_or_start(ray)
        arrays = ray.put(split_arrays(split))  # once per call; every actor reads the same copy
        parts = chunks(list(candidates), len(actors))
        refs = [actor.train.remote([to_wire(c) for c in part], arrays, task, self.time_limit_s)
                for actor, part in zip(actors, parts)]
        results: list[Successor | Quarantined] = []
        lost = False
        for part, ref in zip(parts, refs):
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayError as err:  # the actor or its node died: its whole chunk is lost
                lost = True
                reason = f"its Ray actor died while training ({type(err).__name__})"
                outcomes = [("quarantined", reason)] * len(part)
            results.extend(rebuild(c, o, task) for c, o in zip(part, outcomes))
        if lost:
            self.close()  # the next generation starts fresh actors
        return results

    def _ray(self):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # token auth would need a secret set up per machine
        import ray

        if not ray.is_initialized():  # inside a Ray job (e.g. hydra/launcher=ray) it already is
            if self.address is None:
                # "local": always a private Ray of our own, never one that RAY_ADDRESS or a (maybe
                # stale) `ray start` on this machine points at; one CPU per actor at least.
                where = {"address": "local", "num_cpus": max(os.cpu_count() or 1, self.actors)}
            else:
                where = {"address": self.address}
            ray.init(**where, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self._actors = []  # any actors of an earlier Ray session went with it
        return ray

    def _actors_or_start(self, ray) -> list[Any]:
        if len(self._actors) != self.actors:
            # one CPU each, or an equal share where the cluster has fewer: an actor that asks for
            # more than there is would wait forever
            share = min(1.0, float(ray.cluster_resources().get("CPU", 1.0)) / self.actors)
            remote = ray.remote(num_cpus=share)(RayTrainer)
            self._actors = [remote.remote() for _ in range(self.actors)]
        return self._actors

    def close(self) -> None:
        """End this plugin's actors (Ray itself keeps running until the process exits)."""
        if self._actors:
            import ray

            for actor in self._actors if ray.is_initialized() else ():
                ray.kill(actor)
        self._actors = []
