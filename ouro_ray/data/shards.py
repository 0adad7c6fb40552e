"""Read and write shards as JSONL (for humans) and Parquet (for machines), validated row by row.

A reader never drops a bad record silently: by default it raises :class:`ShardError` listing every
bad record as ``FILE:LINE: what is wrong`` (Parquet rows are numbered from 1 as ``FILE:row N``);
given a quarantine path, it writes each bad record there with its location and problems, counts
them, and returns the good rows.

The contract, for any bytes in the file: a read returns rows that all validate, or raises
:class:`ShardError`, nothing else (``FileNotFoundError`` for a missing file, ``ValueError`` for an
unknown suffix or kind, both naming the file). A JSONL record is a line (lines end at ``\n`` only)
holding more than JSON whitespace; a line that is not UTF-8, not JSON or not a valid record is a bad
record at ``FILE:LINE``. A Parquet file that cannot be read as a whole (corrupt, a repeated column, a
required column missing) is one bad record located at ``FILE``, and gives no rows.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ouro_ray.data.files import atomic_path
from ouro_ray.data.schemas import SHARDS, ShardSpec, shard_spec
from ouro_ray.data.validate import (
    bad_row_mask,
    duplicate_columns,
    ints_as_floats,
    normalize_record,
    record_problems,
    row_record,
    schema_problems,
    to_json,
)

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


def _json_problem(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "not valid JSON (nested too deeply)"
    return f"not valid JSON (a number of more than {sys.get_int_max_str_digits()} digits)"  # Python's int limit


def _scan_jsonl(path: Path, spec: ShardSpec) -> Iterator[tuple[str, dict | None, list[str], str]]:
    # Bytes, so that a line that is not UTF-8 (a writer killed mid-character) is one bad record, and lines
    # end at b"\n" only, as editors and `sed -n Np` count them (text mode would also end them at a lone \r).
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            data = line.removesuffix(b"\n").removesuffix(b"\r")
            if not data.strip(b" \t\r"):
                continue  # blank lines (JSON whitespace only) separate nothing and hold no record
            where = f"{path}:{line_no}"
            try:
                raw = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield where, None, [f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {exc.start + 1})"], \
                    data.decode("utf-8", errors="replace")
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                yield where, None, [_json_problem(exc)], raw
                continue
            if isinstance(obj, dict):
                obj = normalize_record(spec, obj)
            yield where, obj, record_problems(spec, obj), raw


def _parquet_names(tp: pa.DataType) -> None:
    """Touch every nested field name (Arrow decodes them lazily: a corrupt one raises UnicodeDecodeError)."""
    for i in range(tp.num_fields):
        field = tp.field(i)
        _ = field.name
        _parquet_names(field.type)


def _read_parquet(path: Path, spec: ShardSpec) -> tuple[pa.Table | None, list[str]]:
    """The whole file, checked (UTF-8, offsets, names), or the problems that stop it being read at all."""
    try:
        with pq.ParquetFile(path) as pf:
            table = pf.read()
        table.validate(full=True)
        _parquet_names(pa.struct(list(table.schema)))
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        return None, [f"not a readable Parquet file ({type(exc).__name__}: {exc})"]
    if problems := duplicate_columns(table.schema):
        return None, problems
    missing = [c.name for c in spec.columns if c.name not in table.schema.names and not c.nullable]
    if missing:
        return None, [f"column(s) {', '.join(missing)} missing from the Parquet file"]
    return table, []


def _scan_parquet(path: Path, spec: ShardSpec, table: pa.Table) -> Iterator[tuple[str, dict | None, list[str], str]]:
    """Row by row, for a Parquet file whose schema differs from the shard's (e.g. int64 token ids)."""
    row_no = 0
    for batch in table.to_batches():
        for i in range(batch.num_rows):
            row_no += 1
            rec = row_record(batch, i)
            # default=str: a column of a type JSON lacks (bytes, dates) is a problem named below, not a crash here
            yield f"{path}:row {row_no}", rec, record_problems(spec, rec), json.dumps(rec, ensure_ascii=False, default=str)


def _scan_typed(path: Path, spec: ShardSpec, table: pa.Table) -> tuple[pa.Table, list[BadRecord]]:
    """Vectorised, for Arrow data already in the shard's schema: only bad rows become Python."""
    keys = _keys(spec, table)
    bad_mask = bad_row_mask(spec, table)
    bad_mask |= _duplicate_mask(keys, bad_mask)
    bad: list[BadRecord] = []
    first_seen: dict[tuple, int] = {}
    for i in range(table.num_rows):
        if not bad_mask[i]:
            if keys:
                first_seen.setdefault(keys[i], i)
            continue
        rec = row_record(table, i)
        problems = record_problems(spec, rec)
        if not problems and keys:
            problems = [_duplicate_message(spec, keys[i], f"{path}:row {first_seen[keys[i]] + 1}")]
        bad.append(BadRecord(f"{path}:row {i + 1}", tuple(problems), json.dumps(rec, ensure_ascii=False)))
    # The shard's column order and nullability, whatever order the file has them in.
    return table.filter(pa.array(~bad_mask)).select(list(spec.names)).cast(spec.schema), bad


def _keys(spec: ShardSpec, table: pa.Table) -> list[tuple] | None:
    if not spec.key:
        return None
    return list(zip(*(table.column(k).to_pylist() for k in spec.key)))


def _duplicate_mask(keys: list[tuple] | None, already_bad: np.ndarray) -> np.ndarray:
    """Rows whose key repeats an earlier good row's key."""
    dup = np.zeros(len(already_bad), dtype=bool)
    if keys is None:
        return dup
    seen: set[tuple] = set()
    for i, key in enumerate(keys):
        if already_bad[i]:
            continue
        dup[i] = key in seen
        seen.add(key)
    return dup


def _duplicate_message(spec: ShardSpec, key: tuple, first: str) -> str:
    shown = key if len(key) > 1 else key[0]
    return f"duplicate {'/'.join(spec.key)} {shown!r} (first at {first})"


def _key_of(spec: ShardSpec, rec: Mapping[str, Any]) -> tuple | None:
    return tuple(rec.get(k) for k in spec.key) if spec.key else None


def scan_shard(path: Path | str, kind: str) -> tuple[pa.Table, list[BadRecord]]:
    """A shard file split into (table of the valid rows, bad records); a repeated key is a bad record."""
    path, spec = Path(path), shard_spec(kind)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such shard file")
    if shard_format(path) == "jsonl":
        scan = _scan_jsonl(path, spec)
    else:
        table, problems = _read_parquet(path, spec)
        if table is None:
            return spec.schema.empty_table(), [BadRecord(str(path), tuple(problems), "")]
        if not schema_problems(spec, table.schema):
            return _scan_typed(path, spec, table)
        scan = _scan_parquet(path, spec, table)
    good: list[dict] = []
    bad: list[BadRecord] = []
    first_seen: dict[tuple, str] = {}
    for where, rec, problems, raw in scan:
        key = _key_of(spec, rec) if rec is not None and not problems else None
        if key is not None and key in first_seen:
            problems = [_duplicate_message(spec, key, first_seen[key])]
        elif key is not None:
            first_seen[key] = where
        if problems:
            bad.append(BadRecord(where, tuple(problems), raw))
        else:
            good.append(rec)  # type: ignore[arg-type]
    return _records_table(good, spec), bad


def _records_table(records: list[dict[str, Any]], spec: ShardSpec) -> pa.Table:
    """Valid records as a table of the shard's schema."""
    try:
        return pa.Table.from_pylist(records, schema=spec.schema)
    except pa.ArrowInvalid:  # a whole number a float32 cannot hold exactly (2**24 + 1): as a float, Arrow rounds it
        return pa.Table.from_pylist([ints_as_floats(spec, r) for r in records], schema=spec.schema)


def read_shard(path: Path | str, kind: str, *, quarantine: Path | str | None = None) -> ShardRead:
    """Read a JSONL or Parquet shard into an Arrow table of the shard's schema.

    Bad records raise :class:`ShardError` unless ``quarantine`` is given: then they are appended
    to that JSONL file (``{"source": "FILE:LINE", "problems": [...], "record": raw}``), counted in
    the result and logged as a warning.
    """
    table, bad = scan_shard(path, kind)
    if bad and quarantine is None:
        raise ShardError(path, kind, bad)
    qpath = None
    if bad:
        qpath = Path(quarantine)  # type: ignore[arg-type]
        qpath.parent.mkdir(parents=True, exist_ok=True)
        # backslashreplace: a lone surrogate in a problem (an unknown key "\ud800") is written as that JSON escape
        with qpath.open("a", encoding="utf-8", errors="backslashreplace") as fh:
            for b in bad:
                fh.write(json.dumps({"source": b.location, "problems": list(b.problems), "record": b.raw},
                                    ensure_ascii=False) + "\n")
        log.warning("%s: %d bad %s record(s) quarantined to %s", path, len(bad), kind, qpath)
    return ShardRead(table, len(bad), qpath)


def table_to_records(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Rows of an Arrow table as JSON-ready dicts (maps as objects, float32 written shortest)."""
    columns = [(name, table.schema.field(name).type, table.column(name).to_pylist()) for name in table.schema.names]
    return [{name: to_json(tp, values[i]) for name, tp, values in columns} for i in range(table.num_rows)]


# ---------------------------------------------------------------- writing


def to_table(data: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], kind: str) -> pa.Table:
    """An Arrow table of shard ``kind`` from a table, a batch or JSON-like records, validated."""
    spec = shard_spec(kind)
    if isinstance(data, (pa.Table, pa.RecordBatch)) and (repeated := duplicate_columns(data.schema)):
        raise ShardError("<in memory>", kind, [BadRecord("schema", tuple(repeated), "")])
    if isinstance(data, (pa.Table, pa.RecordBatch)) and not schema_problems(spec, data.schema):
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        mask = bad_row_mask(spec, table)
        bad = [BadRecord(f"row {i + 1}", tuple(record_problems(spec, row_record(table, int(i)))), "")
               for i in np.flatnonzero(mask)]
        if bad:
            raise ShardError("<in memory>", kind, bad)
        return table.select(list(spec.names)).cast(spec.schema)  # the shard's column order and nullability
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        records = table_to_records(data)
    else:
        records = [normalize_record(spec, r) if isinstance(r, Mapping) else r for r in data]
    bad = [BadRecord(f"record {i}", tuple(p), "") for i, r in enumerate(records, 1) if (p := record_problems(spec, r))]
    if bad:
        raise ShardError("<in memory>", kind, bad)
    return _records_table(records, spec)


def write_shard(data: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], path: Path | str, kind: str) -> Path:
    """Validate and write a shard as JSONL or Parquet (by suffix), atomically; returns the path. Invalid rows or
    a repeated key (what :func:`read_shard` would refuse) raise :class:`ShardError` before anything is written."""
    shard_format(Path(path))  # a bad suffix fails before the data is converted
    table = to_table(data, kind)
    _refuse_repeated_keys(shard_spec(kind), table)
    return write_table(table, path)


def _refuse_repeated_keys(spec: ShardSpec, table: pa.Table) -> None:
    """A file whose key repeats is one :func:`read_shard` refuses: do not write it. Vectorised when clean."""
    if not spec.key or table.group_by(list(spec.key)).aggregate([]).num_rows == table.num_rows:
        return
    keys = _keys(spec, table) or []
    first: dict[tuple, int] = {}
    bad = []
    for i, key in enumerate(keys):
        if key in first:
            bad.append(BadRecord(f"row {i + 1}", (_duplicate_message(spec, key, f"row {first[key] + 1}"),), ""))
        first.setdefault(key, i)
    raise ShardError("<in memory>", spec.kind, bad)


def write_table(table: pa.Table, path: Path | str) -> Path:
    """Write any table as JSONL or Parquet (by suffix), atomically, without a shard kind's checks."""
    path = Path(path)
    fmt = shard_format(path)
    with atomic_path(path) as tmp:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in table_to_records(table):
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            pq.write_table(table, tmp)
    return path
