"""Shard I/O throughput: validated reads and writes of a candidates shard, JSONL vs Parquet.

Every record is validated on read (types, enumerations, row checks, duplicate keys), so this measures
what a loop stage really pays to load a shard, next to the raw ``pyarrow`` read with no checks.

    python -m benchmarks.shard_io [--rows N] [--tokens T] [--reps K] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from ouro_ray.data import read_shard, to_table, write_shard


def _candidates(rows: int, tokens: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 2048, size=(rows, tokens)).astype(int)
    prompt_ids = rng.integers(0, 2048, size=(rows, tokens // 2)).astype(int)
    logprobs = -rng.exponential(1.0, size=(rows, tokens)).astype(np.float32)
    return [{"prompt_id": f"p{i // 4}", "candidate_id": f"c{i % 4}", "text": "word " * (tokens // 2),
             "prompt_token_ids": prompt_ids[i].tolist(), "token_ids": ids[i].tolist(),
             "logprobs": logprobs[i].tolist(), "policy_version": 0}
            for i in range(rows)]


def _time(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run(rows: int, tokens: int, reps: int) -> dict:
    table = to_table(_candidates(rows, tokens), "candidates")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jsonl", "parquet"):
            path = Path(tmp) / f"candidates.{fmt}"
            write = _time(lambda: write_shard(table, path, "candidates"), reps)
            read = _time(lambda: read_shard(path, "candidates"), reps)
            results[fmt] = {"write_rows_per_s": rows / statistics.median(write),
                            "read_validated_rows_per_s": rows / statistics.median(read),
                            "bytes": path.stat().st_size}
        raw = _time(lambda: pq.read_table(Path(tmp) / "candidates.parquet"), reps)
        results["parquet"]["read_raw_rows_per_s"] = rows / statistics.median(raw)
    return {"suite": "shard-io", "rows": rows, "tokens_per_row": tokens, "reps": reps,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "gpu": False},
            "results": results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    report = run(args.rows, args.tokens, args.reps)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
