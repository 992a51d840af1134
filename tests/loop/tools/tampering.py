"""A real tiny run to tamper with, for the `rsi-loop-verify` tests: the intact run (built once per
test module, its anchor kept by the engine itself), a private copy per test, and the helpers that
rewrite a ledger the way someone who knows its format would."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import run_loop
from loop.ledger import GENESIS, chain_hash, read, read_anchor
from loop.tools.cli import verify_main


@dataclass(frozen=True)
class Run:
    path: Path
    anchor: Path


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("verify")
    run_dir, anchor = base / "run", base / "anchors" / "run.json"
    run_loop(run_dir, f"ledger.anchor={anchor}")  # the engine under test keeps the anchor
    last = read(run_dir / "ledger.jsonl")[-1]
    kept = read_anchor(anchor)
    assert (kept["seq"], kept["hash"]) == (last.seq, last.hash)
    assert kept["ledger"] == str((run_dir / "ledger.jsonl").resolve())
    return Run(run_dir, anchor)


@pytest.fixture
def run(intact, tmp_path) -> Path:
    """A private copy of the intact run to tamper with."""
    copy = tmp_path / "run"
    shutil.copytree(intact.path, copy)
    return copy


def verify_cli(capsys, *args: str) -> tuple[int, str]:
    try:
        verify_main([str(a) for a in args])
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().out


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


def write_records(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def rehash(rows: list[dict]) -> list[dict]:
    """Recompute the whole chain, as someone who rewrote a line and knows the format would."""
    prev = GENESIS
    for row in rows:
        row["prev"] = prev
        row["hash"] = prev = chain_hash(row)
    return rows


@contextmanager
def started(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The run_started line's detail (config hash, plugins, hashes), to edit in place; written back with
    the whole chain recomputed when the block ends, as someone who knows the format would."""
    rows = records(run_dir)
    yield rows[0]["detail"]
    write_records(run_dir, rehash(rows))


def first(rows: list[dict], event: str) -> int:
    """The 0-based index of the first `event` line (its line number is index + 1)."""
    return next(i for i, r in enumerate(rows) if r["event"] == event)
