"""Reads back a W&B offline run file (``run-ID.wandb``) without the network: its history, config and files.

The file is a 7-byte header (``:W&B``, magic, version) and then protobuf ``Record`` messages in the LevelDB
log format: 32 KiB blocks, each record chunk behind a 7-byte header (CRC32C, length, type), a record longer
than its block split into first/middle/last chunks, block tails shorter than a header zero-filled.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, LAST = 1, 2, 4


def records(path: Path):
    """Every ``wandb_internal_pb2.Record`` in the file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file (starts {data[:7]!r})")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's zero-filled tail
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


@dataclass
class OfflineRun:
    """What the trackers wrote to one offline run directory."""

    run_id: str
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    exit_code: int | None = None


def read_offline_run(run_dir: Path, timeout_s: float = 30.0) -> OfflineRun:
    """``run_dir``: a ``wandb/offline-run-*`` directory, read once it ends with its exit record (W&B's service
    process may still be writing it for a moment after ``run.finish()`` returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = _read(run_dir)
        if run.exit_code is not None:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"{run_dir}: no exit record after {timeout_s} s (history steps {sorted(run.history)})")
        time.sleep(0.2)


def _read(run_dir: Path) -> OfflineRun:
    (path,) = run_dir.glob("run-*.wandb")
    run = OfflineRun(path.stem.removeprefix("run-"))
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            keys = [(item.key or "/".join(item.nested_key), item) for item in record.history.item]  # a/b: nested
            items = {key: json.loads(item.value_json) for key, item in keys if not key.startswith("_")}
            if record.history.step.num in run.history:
                raise AssertionError(f"step {record.history.step.num} logged twice in {path}")
            run.history[record.history.step.num] = items
        elif kind == "config":
            run.config |= {item.key: json.loads(item.value_json) for item in record.config.update}
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run
