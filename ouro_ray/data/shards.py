"""Read and write shards as JSONL (for humans) and Parquet (for machines), validated row by row.

A reader never drops a bad record silently: by default it raises :class:`ShardError` listing every
bad record as ``FILE:LINE: what is wrong`` (Parquet rows are numbered from 1 as ``FILE:row N``);
given a quarantine path, it writes each bad record there with its location and problems, counts
them, and returns the good rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ouro_ray.data.schemas import SHARDS, ShardSpec, normalize_record, record_problems, shard_spec

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SHOWN_IN_MESSAGE = 50


@dataclass(frozen=True)
class BadRecord:
    """One rejected record: where it is, what is wrong, and its raw text."""

    location: str
    problems: tuple[str, ...]
    raw: str

    def lines(self) -> list[str]:
        return [f"{self.location}: {p}" for p in self.problems]


class ShardError(ValueError):
    """A shard with bad records; ``bad`` holds all of them, the message the first fifty."""

    def __init__(self, path: Path | str, kind: str, bad: Sequence[BadRecord]):
        self.path, self.kind, self.bad = Path(path), kind, list(bad)
        lines = [line for b in self.bad for line in b.lines()]
        more = f"\n  … and {len(lines) - _SHOWN_IN_MESSAGE} more" if len(lines) > _SHOWN_IN_MESSAGE else ""
        super().__init__(
            f"{path}: {len(self.bad)} bad {kind} record(s):\n  " + "\n  ".join(lines[:_SHOWN_IN_MESSAGE]) + more
        )


@dataclass(frozen=True)
class ShardRead:
    """What a read returns: the valid rows, and how many bad ones went to quarantine (and where)."""

    table: pa.Table
    n_bad: int = 0
    quarantine: Path | None = None


# ---------------------------------------------------------------- formats


def shard_format(path: Path | str) -> str:
    """'jsonl' or 'parquet' from the file name; the error names the accepted suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise ValueError(
        f"{path}: unknown shard format {suffix or '(no suffix)'!r}; use one of "
        f"{', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def infer_kind(path: Path | str) -> str:
    """The shard kind named in a file name (``round3-scores.jsonl`` → scores), or a clear error."""
    words = set(re.split(r"[^a-z]+", Path(path).name.lower()))
    found = [k for k in SHARDS if k in words]
    if len(found) != 1:
        raise ValueError(
            f"{path}: cannot tell the shard kind from the file name; pass --kind with one of {', '.join(SHARDS)}"
        )
    return found[0]


# ---------------------------------------------------------------- reading


def _scan_jsonl(path: Path, spec: ShardSpec) -> Iterator[tuple[str, dict | None, list[str], str]]:
    with path.open("r", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            raw = line.rstrip("\n")
            if not raw.strip():
                continue  # blank lines separate nothing and hold no record
            where = f"{path}:{line_no}"
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield where, None, [f"not valid JSON ({exc.msg} at column {exc.colno})"], raw
                continue
            if isinstance(obj, dict):
                obj = normalize_record(spec, obj)
            yield where, obj, record_problems(spec, obj), raw


def _scan_parquet(path: Path, spec: ShardSpec) -> Iterator[tuple[str, dict | None, list[str], str]]:
    pf = pq.ParquetFile(path)
    missing = [c.name for c in spec.columns if c.name not in pf.schema_arrow.names and not c.nullable]
    if missing:
        yield f"{path}", None, [f"column(s) {', '.join(missing)} missing from the Parquet file"], ""
        return
    row_no = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            row_no += 1
            rec = _arrow_row_to_json(batch.schema, row)
            yield f"{path}:row {row_no}", rec, record_problems(spec, rec), json.dumps(rec, ensure_ascii=False)


def _key_of(spec: ShardSpec, rec: Mapping[str, Any]) -> tuple | None:
    return tuple(rec.get(k) for k in spec.key) if spec.key else None


def scan_shard(path: Path | str, kind: str) -> tuple[list[dict], list[BadRecord]]:
    """All records of a shard file split into (valid records, bad records), duplicates of the key
    columns included among the bad ones."""
    path, spec = Path(path), shard_spec(kind)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such shard file")
    scan = _scan_jsonl if shard_format(path) == "jsonl" else _scan_parquet
    good: list[dict] = []
    bad: list[BadRecord] = []
    first_seen: dict[tuple, str] = {}
    for where, rec, problems, raw in scan(path, spec):
        key = _key_of(spec, rec) if rec is not None and not problems else None
        if key is not None and key in first_seen:
            problems = [f"duplicate {'/'.join(spec.key)} {key if len(key) > 1 else key[0]!r} "
                        f"(first at {first_seen[key]})"]
        elif key is not None:
            first_seen[key] = where
        if problems:
            bad.append(BadRecord(where, tuple(problems), raw))
        else:
            good.append(rec)  # type: ignore[arg-type]
    return good, bad


def read_shard(path: Path | str, kind: str, *, quarantine: Path | str | None = None) -> ShardRead:
    """Read a JSONL or Parquet shard into an Arrow table of the shard's schema.

    Bad records raise :class:`ShardError` unless ``quarantine`` is given: then they are appended
    to that JSONL file (``{"source": "FILE:LINE", "problems": [...], "record": raw}``), counted in
    the result and logged as a warning.
    """
    good, bad = scan_shard(path, kind)
    if bad and quarantine is None:
        raise ShardError(path, kind, bad)
    qpath = None
    if bad:
        qpath = Path(quarantine)  # type: ignore[arg-type]
        qpath.parent.mkdir(parents=True, exist_ok=True)
        with qpath.open("a", encoding="utf-8") as fh:
            for b in bad:
                fh.write(json.dumps({"source": b.location, "problems": list(b.problems), "record": b.raw},
                                    ensure_ascii=False) + "\n")
        log.warning("%s: %d bad %s record(s) quarantined to %s", path, len(bad), kind, qpath)
    table = pa.Table.from_pylist(good, schema=shard_spec(kind).schema)
    return ShardRead(table, len(bad), qpath)


# ---------------------------------------------------------------- Arrow ↔ JSON values


def _arrow_row_to_json(schema: pa.Schema, row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _to_json(schema.field(name).type, row[name]) for name in schema.names}


def _to_json(tp: pa.DataType, value: Any) -> Any:
    """Arrow's Python value to plain JSON: maps to objects; float32 to its shortest exact decimal."""
    if value is None:
        return None
    if pa.types.is_map(tp):
        return {k: _to_json(tp.item_type, v) for k, v in value}
    if pa.types.is_list(tp):
        return [_to_json(tp.value_type, v) for v in value]
    if pa.types.is_struct(tp):
        return {f.name: _to_json(f.type, value.get(f.name)) for f in tp}
    if pa.types.is_float32(tp):
        return float(str(np.float32(value)))  # 0.3, not 0.30000001192092896; same float32 on reload
    return value


def table_to_records(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Rows of an Arrow table as JSON-ready dicts (maps as objects, float32 written shortest)."""
    return [_arrow_row_to_json(table.schema, row) for row in table.to_pylist()]


# ---------------------------------------------------------------- writing


def to_table(data: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], kind: str) -> pa.Table:
    """An Arrow table of shard ``kind`` from a table, a batch or JSON-like records, validated."""
    spec = shard_spec(kind)
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        records = table_to_records(data)
    else:
        records = [normalize_record(spec, r) for r in data]
    bad = [BadRecord(f"record {i}", tuple(p), "") for i, r in enumerate(records, 1) if (p := record_problems(spec, r))]
    if bad:
        raise ShardError("<in memory>", kind, bad)
    return pa.Table.from_pylist(records, schema=spec.schema)


def write_shard(data: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], path: Path | str, kind: str) -> Path:
    """Validate and write a shard as JSONL or Parquet (by suffix), atomically; returns the path."""
    path = Path(path)
    fmt = shard_format(path)
    table = to_table(data, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if fmt == "jsonl":
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for rec in table_to_records(table):
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            os.close(fd)
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
