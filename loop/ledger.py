"""The ledger: an append-only, hash-chained `ledger.jsonl`.

Each line is one JSON object with the contract fields `seq`, `time`, `generation`, `event`,
`successor`, `parent`, `metrics`, `reasons`, `prev`, `hash`, plus an optional `detail` object for
event-specific structure (a proposed genome, a checkpoint's sha256, the hashes recorded at start).
`hash` is sha256 over `prev` followed by the canonical JSON of every other field, so changing,
deleting or reordering any line breaks the chain from that line on.

Every line is flushed and fsynced before `append` returns: a killed run loses nothing it wrote.
This module imports neither torch nor numpy, so `rsi-loop-verify` and `rsi-loop-report` stay light.

A chain proves that no line was changed, deleted, inserted or reordered, but it cannot know its
own end: cutting off the last lines, or rewriting a line and recomputing every hash after it,
leaves a valid chain. An *anchor* closes that gap: a small JSON file outside the run directory
(`{"ledger": ..., "seq": ..., "hash": ...}`) that the ledger rewrites atomically after every
append. `rsi-loop-verify --anchor PATH` then detects a truncated tail (the ledger ends before the
anchor's line) and a recomputed chain (the anchor's line has another hash). Keep the anchor where
whoever could edit the run directory cannot (another disk, a write-once store, a different user).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
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
    "audited",  # the held-out audit of a reviewed nominee (loop/gate/audit.py): ledger and report only
    "test_added", "test_retired", "tests_run",  # gate=growing's bank of mined tests (loop/gate/growing.py)
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, sync, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide run files from the user's other tools
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LedgerError(Exception):
    """The ledger is not intact: names the first bad line and what is wrong with it."""

    def __init__(self, line: int, problem: str, *, message: str | None = None):
        super().__init__(message or f"ledger.jsonl line {line}: {problem}")
        self.line = line


# --- the anchor -------------------------------------------------------------------------------


class AnchorError(ValueError):
    """An anchor file that cannot be used (missing, unreadable, not an anchor)."""


def outside_run(path: Path | str, run_dir: Path | str, setting: str, why: str) -> Path:
    """`path` as an absolute path; `ValueError` naming `setting` and `why` if it lies inside `run_dir`
    (a file whose worth is that the run cannot touch it: the ledger's anchor, a private twin's key)."""
    where, run = Path(path).expanduser().resolve(), Path(run_dir).resolve()
    if where == run or run in where.parents:
        raise ValueError(f"{setting} must be outside the run directory: {path} is inside {run}; {why}")
    return where


def check_anchor_outside(anchor: Path | str, run_dir: Path | str) -> Path:
    """The anchor as an absolute path; `ValueError` if it lies inside `run_dir` (whoever can edit
    the run could then rewrite the anchor along with the ledger)."""
    return outside_run(anchor, run_dir, "ledger.anchor", "put it where whoever can edit the run cannot, e.g. "
                                                        "ledger.anchor=~/anchors/<run>.json")


def read_anchor(path: Path | str) -> dict[str, Any]:
    """The anchor's {"ledger", "seq", "hash"}, or `AnchorError` saying what is wrong."""
    try:
        anchor = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise AnchorError(f"anchor {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnchorError(f"anchor {path} cannot be read ({err})") from None
    if not (isinstance(anchor, dict) and isinstance(anchor.get("ledger"), str)
            and isinstance(anchor.get("seq"), int) and not isinstance(anchor.get("seq"), bool)
            and anchor["seq"] >= 0 and isinstance(anchor.get("hash"), str) and len(anchor["hash"]) == 64):
        raise AnchorError(f'anchor {path} is not a ledger anchor (expected {{"ledger": path, "seq": n, '
                          f'"hash": sha256}}, got {str(anchor)[:200]})')
    return anchor


def write_anchor(anchor: Path | str, ledger: Path | str, seq: int, hash: str) -> None:
    """Atomically (re)write `anchor` to record that `ledger` ends at `seq` with `hash`."""
    record = {"ledger": str(Path(ledger).resolve()), "seq": seq, "hash": hash}
    atomic_write(Path(anchor), (canonical(record) + "\n").encode())


def anchor_mismatch(hashes: Sequence[str], anchor: Mapping[str, Any]) -> LedgerError | None:
    """Compare an intact chain's line hashes (in order) with an anchor; the first problem, if any.

    Line `seq + 1` holds seq `seq`. The ledger may not end before the anchor's line (truncated),
    that line must carry the anchor's hash (else the chain was recomputed), and it must be the
    last line (else lines were appended without updating the anchor)."""
    seq, n = anchor["seq"], len(hashes)
    if seq >= n:
        ends = f"ends at line {n}" if n else "is empty"
        return LedgerError(n + 1, "truncated", message=(
            f"ledger.jsonl was truncated: the anchor records line {seq + 1} (seq {seq}) but the ledger {ends}"))
    if hashes[seq] != anchor["hash"]:
        return LedgerError(seq + 1, "hash differs from the anchor (the chain was recomputed)")
    if n > seq + 1:
        extra = n - seq - 1
        why = (" (or a crash fell between writing that line and the anchor: resuming the run re-anchors it)"
               if extra == 1 else "")
        return LedgerError(seq + 2, f"not covered by the anchor, which ends at line {seq + 1} (seq {seq}): "
                                    f"{extra} line(s) were appended without updating the anchor{why}")
    return None


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
    """Appends events to `ledger.jsonl`, each line flushed and synced before returning.

    With `anchor` (a path outside the run directory), every append also rewrites the anchor file
    atomically with the new last line's seq and hash. Opening an existing ledger checks it against
    its anchor first: a truncated or recomputed chain raises `LedgerError`. One line beyond the
    anchor is accepted (a crash between the two writes) and re-anchored by the next append.
    """

    def __init__(self, path: Path | str, anchor: Path | str | None = None):
        self.path = Path(path)
        self.anchor = None if anchor in (None, "") else check_anchor_outside(anchor, self.path.parent)
        self.prev, self.seq = GENESIS, 0
        hashes: list[str] = []
        if self.path.exists():
            for _, record in read_records(self.path):
                self.prev, self.seq = record["hash"], record["seq"] + 1
                hashes.append(record["hash"])
        if self.anchor is not None and self.anchor.exists():
            recorded = read_anchor(self.anchor)
            if recorded["ledger"] == str(self.path.resolve()):  # another run's anchor is replaced
                problem = anchor_mismatch(hashes, recorded)
                if problem is not None and not (problem.line == recorded["seq"] + 2 == len(hashes)):
                    raise problem

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
        if self.anchor is not None:
            write_anchor(self.anchor, self.path, record["seq"], record["hash"])
        return Event.from_record(record)
