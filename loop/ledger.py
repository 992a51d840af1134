"""The ledger: an append-only, hash-chained `ledger.jsonl`.

Each line is one JSON object with the contract fields `seq`, `time`, `generation`, `event`,
`successor`, `parent`, `metrics`, `reasons`, `prev`, `hash`, plus an optional `detail` object for
event-specific structure (a proposed genome, a checkpoint's sha256, the hashes recorded at start).
`hash` is sha256 over `prev` followed by the canonical JSON of every other field, so changing,
deleting or reordering any line breaks the chain from that line on.

Every line is flushed and fsynced before `append` returns: a killed run loses nothing it wrote.
This module imports neither torch nor numpy, so `rsi-loop-verify` and `rsi-loop-report` stay light.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

GENESIS = "0" * 64
EVENTS = (
    "run_started", "proposed", "trained", "quarantined", "evaluated", "nominated",
    "not_nominated", "vetoed", "promoted", "paused", "approved", "resumed",
    "generation_finished", "run_finished",
)
FIELDS = ("seq", "time", "generation", "event", "successor", "parent", "metrics", "reasons", "prev", "hash")


def canonical(obj: Any) -> str:
    """The one JSON spelling used for hashing: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def chain_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
    return sha256_text(record["prev"] + canonical(body))


def clean_metrics(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """Round metrics to 6 decimals (readable, still exact across identical runs); a non-finite
    value becomes null rather than invalid JSON."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        value = float("nan") if value is None else float(value)
        out[key] = round(value, 6) if math.isfinite(value) else None
    return out


class LedgerError(Exception):
    """The ledger is not intact: names the first bad line and what is wrong with it."""

    def __init__(self, line: int, problem: str):
        super().__init__(f"ledger.jsonl line {line}: {problem}")
        self.line = line


@dataclass(frozen=True)
class Event:
    """One ledger line as read back."""

    seq: int
    time: float
    generation: int
    event: str
    successor: str | None
    parent: str | None
    metrics: Mapping[str, float | None]
    reasons: tuple[str, ...]
    detail: Mapping[str, Any]
    hash: str

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "Event":
        return cls(r["seq"], r["time"], r["generation"], r["event"], r.get("successor"),
                   r.get("parent"), r.get("metrics") or {}, tuple(r.get("reasons") or ()),
                   r.get("detail") or {}, r["hash"])


def read_records(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) and check the chain as it goes; raise `LedgerError` at the
    first line that is not intact."""
    prev, seq = GENESIS, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                raise LedgerError(number, "the last line is incomplete (no newline): a torn write or a cut file")
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise LedgerError(number, f"not valid JSON ({err})") from None
            if not isinstance(record, dict) or any(k not in record for k in FIELDS):
                missing = [k for k in FIELDS if not isinstance(record, dict) or k not in record]
                raise LedgerError(number, f"missing fields {missing}")
            if record["seq"] != seq:
                raise LedgerError(number, f"seq is {record['seq']!r}, expected {seq} (a line was deleted or moved)")
            if record["prev"] != prev:
                raise LedgerError(number, "prev does not match the previous line's hash (lines deleted, "
                                          "reordered or inserted)")
            if chain_hash(record) != record["hash"]:
                raise LedgerError(number, "hash does not match the line's content (the line was changed)")
            prev, seq = record["hash"], seq + 1
            yield number, record


def repair_torn_tail(path: Path | str) -> int:
    """Cut an incomplete last line (a write torn by a crash) so the run can resume; return the
    number of bytes cut (0 when the ledger ends cleanly). Only the unterminated tail is touched."""
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return len(data) - keep


class RunBusy(RuntimeError):
    """Another process is writing this run."""


@contextmanager
def writer_lock(run_dir: Path | str) -> Iterator[None]:
    """Hold the run's writer lock: one process at a time appends to a ledger, so two resumes of
    one run cannot interleave their lines and break the chain."""
    import fcntl

    with open(Path(run_dir) / ".lock", "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"another rsi-loop process is writing {run_dir}; wait for it to stop") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read(path: Path | str) -> list[Event]:
    """All events of an intact ledger, or `LedgerError`."""
    return [Event.from_record(r) for _, r in read_records(path)]


class Ledger:
    """Appends events to `ledger.jsonl`, each line flushed and synced before returning."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.prev, self.seq = GENESIS, 0
        if self.path.exists():
            for _, record in read_records(self.path):
                self.prev, self.seq = record["hash"], record["seq"] + 1

    def append(self, event: str, generation: int, *, successor: str | None = None,
               parent: str | None = None, metrics: Mapping[str, float] | None = None,
               reasons: Sequence[str] = (), detail: Mapping[str, Any] | None = None) -> Event:
        if event not in EVENTS:
            raise ValueError(f"unknown ledger event {event!r}; known: {', '.join(EVENTS)}")
        record: dict[str, Any] = {
            "seq": self.seq, "time": round(time.time(), 3), "generation": generation, "event": event,
            "successor": successor, "parent": parent, "metrics": clean_metrics(metrics or {}),
            "reasons": list(reasons), "prev": self.prev,
        }
        if detail:
            record["detail"] = json.loads(canonical(detail))  # plain JSON types only
        record["hash"] = chain_hash(record)
        line = json.dumps({k: record[k] for k in (*FIELDS[:-2], "detail", "prev", "hash") if k in record},
                          ensure_ascii=False, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.prev, self.seq = record["hash"], self.seq + 1
        return Event.from_record(record)
