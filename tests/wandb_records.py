"""Read back what an offline wandb run wrote, as `wandb sync` would: the records of its `.wandb` file.

wandb 0.31 ships no Python reader for that file. Its format is LevelDB's log format behind a 7-byte
header (`:W&B`, a 2-byte magic, a version byte): 32 KiB blocks of chunks, each with a 7-byte header
(crc32, length, type: 1 whole, 2 first, 3 middle, 4 last), a record split across blocks in chunks;
each record is a `wandb_internal_pb2.Record` protobuf."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator

BLOCK, HEADER = 32768, 7
WHOLE, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    at, pending = HEADER, b""
    while at + HEADER <= len(data):
        left = BLOCK - at % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            at += left
            continue
        _, length, kind = struct.unpack("<IHB", data[at:at + HEADER])
        if kind == 0:  # zero padding to the end of the block
            at += left
            continue
        pending += data[at + HEADER:at + HEADER + length]
        at += HEADER + length
        if kind in (WHOLE, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def of_kind(path: Path, kind: str) -> list:
    """The records of one kind (`run`, `artifact`, `history`, ...), their payloads."""
    return [getattr(r, kind) for r in records(path) if r.WhichOneof("record_type") == kind]


def offline_run(run_dir: Path) -> Path:
    """The one offline wandb run a run directory holds."""
    (found,) = Path(run_dir).glob("wandb/offline-run-*")
    return found
