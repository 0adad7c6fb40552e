"""Checking data against the shard schemas: JSON records row by row, Arrow tables vectorised.

Two paths that give the same verdict: :func:`record_problems` explains one JSON record (for
``FILE:LINE`` messages); :func:`bad_row_mask` finds bad rows of a typed Arrow table with compute
kernels, so clean Arrow data (Parquet files, batches between actors) is never converted to Python.
"""

from __future__ import annotations

import difflib
import math
import sys
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.data.schemas import ShardSpec, shard_spec

_STRS = pa.list_(pa.string())


def _suggest(name: Any, valid: list[str]) -> str:
    near = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


# ---------------------------------------------------------------- JSON records

# By width, the magnitude from which a number rounds to an infinite float (max + half an ulp). Comparing
# against it also rejects NaN and infinities, and never overflows for a huge int (Python compares exactly).
_FLOAT_LIMITS = {16: 65520.0, 32: 2.0**128 - 2.0**103, 64: 2**1024 - 2**970}


def _show(value: Any) -> str:
    """A value in a message, cut to 60 characters; Python refuses to print an int of over 4300 digits."""
    try:
        return f"{value!r:.60}"
    except ValueError:
        return f"<a {type(value).__name__} holding a number of over {sys.get_int_max_str_digits()} digits>"


def _float_limit(tp: pa.DataType) -> float:
    return _FLOAT_LIMITS[tp.bit_width]


def _unicode_problem(value: str, where: str) -> str | None:
    """JSON may spell a lone surrogate (``"\\ud800"``); it is no character and Arrow strings are UTF-8."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{where}: not valid Unicode: a lone surrogate \\u{ord(value[exc.start]):04x} at character {exc.start + 1}"
    return None


def _scalar_problem(tp: pa.DataType, value: Any, where: str) -> str | None:
    if pa.types.is_string(tp):
        if not isinstance(value, str):
            return f"{where}: expected a string, got {type(value).__name__} {_show(value)}"
        return _unicode_problem(value, where)
    if pa.types.is_integer(tp):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where}: expected a whole number, got {_show(value)}"
        bits = tp.bit_width - 1
        return None if -(2**bits) <= value < 2**bits else f"{where}: {_show(value)} does not fit in {tp}"
    if pa.types.is_floating(tp):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{where}: expected a number, got {_show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a finite number"
        if -_float_limit(tp) < value < _float_limit(tp):
            return None
        return f"{where}: {_show(value)} is too large for float{tp.bit_width} (it would be infinite)"
    if pa.types.is_boolean(tp):
        return None if isinstance(value, bool) else f"{where}: expected true or false, got {_show(value)}"
    raise TypeError(f"schema uses unsupported Arrow type {tp} at {where}")


def _list_problems(tp: pa.ListType, value: Any, path: str, choices: Mapping[str, tuple[str, ...]], sub: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{path}: expected a list, got {type(value).__name__} {_show(value)}"]
    item = tp.value_type
    # Fast path for token ids / logprobs: one pass of cheap type tests, details only on failure.
    if pa.types.is_integer(item) and all(type(v) is int and -(2**31) <= v < 2**31 for v in value):
        return []
    if pa.types.is_floating(item):
        limit = _float_limit(item)
        if all(type(v) is float and -limit < v < limit for v in value):
            return []
    out: list[str] = []
    for i, v in enumerate(value):
        out += _value_problems(item, v, f"{path}[{i}]", choices, sub, False)
    return out


def _value_problems(tp: pa.DataType, value: Any, path: str, choices: Mapping[str, tuple[str, ...]],
                    sub: str, nullable: bool) -> list[str]:
    """Problems of one JSON value against an Arrow type, recursing into lists, structs and maps."""
    where = path or "record"
    if value is None:
        return [] if nullable else [f"{where}: missing or null, but required"]
    if pa.types.is_list(tp):
        return _list_problems(tp, value, where, choices, sub)
    if pa.types.is_struct(tp):
        return _struct_problems(tp, value, path, choices, sub)
    if pa.types.is_map(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object of name → number, got {type(value).__name__}"]
        keys = [p for k in value if (p := _scalar_problem(tp.key_type, k, f"{where}: key {k!r:.40}"))]
        return keys + [p for k, v in value.items()
                       for p in _value_problems(tp.item_type, v, f"{path}.{k}", choices, sub, False)]
    problem = _scalar_problem(tp, value, where)
    if problem:
        return [problem]
    allowed = choices.get(sub)
    if allowed and value not in allowed:
        return [f"{where}: {value!r} is not one of {' | '.join(allowed)}"]
    return []


def _struct_problems(tp: pa.StructType, value: Any, path: str, choices: Mapping[str, tuple[str, ...]],
                     sub: str) -> list[str]:
    where = path or "record"
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__} {_show(value)}"]
    names = [f.name for f in tp]
    dot = f"{path}." if path else ""
    out = [f"{dot}{k}: unknown field{_suggest(k, names)}; expected fields: {', '.join(names)}"
           for k in value if k not in names]
    for f in tp:
        out += _value_problems(f.type, value.get(f.name), f"{dot}{f.name}", choices,
                               f"{sub}.{f.name}".lstrip("."), f.nullable)
    return out


def _strings_to_lists(tp: pa.DataType, value: Any) -> Any:
    if isinstance(value, str) and tp == _STRS:
        return [value]
    if isinstance(value, dict) and pa.types.is_struct(tp):
        fields = {f.name: f.type for f in tp}  # not tp.get_field_index(k): Arrow cannot encode a key "\ud800" or 1
        return {k: _strings_to_lists(fields[k], v) if k in fields else v for k, v in value.items()}
    return value


def _ints_as_floats(tp: pa.DataType, value: Any) -> Any:
    if type(value) is int and pa.types.is_floating(tp):
        return float(value)
    if isinstance(value, list) and pa.types.is_list(tp):
        return [_ints_as_floats(tp.value_type, v) for v in value]
    if isinstance(value, dict) and pa.types.is_map(tp):
        return {k: _ints_as_floats(tp.item_type, v) for k, v in value.items()}
    if isinstance(value, dict) and pa.types.is_struct(tp):
        fields = {f.name: f.type for f in tp}
        return {k: _ints_as_floats(fields[k], v) if k in fields else v for k, v in value.items()}
    return value


def ints_as_floats(spec: ShardSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """A valid record with each whole number in a float column as a float. JSON cannot tell 16777217 from
    16777217.0, but Arrow refuses an int a float32 cannot hold exactly; a float it rounds."""
    return {k: _ints_as_floats(spec.column(k).type, v) for k, v in record.items()}


def normalize_record(spec: ShardSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """The JSONL leniency, lossless and documented: a single string where a list of strings is
    expected becomes a one-item list (e.g. ``"logic": "A, so B"``). Nothing else is rewritten."""
    return {k: _strings_to_lists(spec.column(k).type, v) if k in spec.names else v for k, v in record.items()}


def record_problems(spec: ShardSpec, record: Any) -> list[str]:
    """Every problem of one JSON record against ``spec``; empty means valid."""
    if not isinstance(record, dict):
        return [f"expected a JSON object with {', '.join(spec.names)}, got {type(record).__name__}"]
    out = [f"{k}: unknown field{_suggest(k, list(spec.names))}; expected fields: {', '.join(spec.names)}"
           for k in record if k not in spec.names]
    for c in spec.columns:
        out += _value_problems(c.type, record.get(c.name), c.name, c.choices, "", c.nullable)
    if not out:
        out += [p for check in spec.row_checks if (p := check.row(record))]
    return out


# ---------------------------------------------------------------- Arrow tables


def duplicate_columns(schema: pa.Schema) -> list[str]:
    """A problem per column name the schema holds more than once (no row can say which one it means)."""
    names = schema.names
    return [f"column {n!r} appears {names.count(n)} times; fix: keep one of them" for n in sorted(set(names))
            if names.count(n) > 1]


def schema_problems(spec: ShardSpec, schema: pa.Schema) -> list[str]:
    """Column-level mismatches: repeated columns, missing columns, wrong types, columns the shard does not have."""
    out = duplicate_columns(schema)
    for c in spec.columns:
        if c.name not in schema.names:
            out.append(f"column {c.name!r} is missing ({c.meaning})")
        elif schema.get_all_field_indices(c.name)[1:]:
            continue  # repeated: reported above
        elif schema.field(c.name).type != c.type:
            out.append(f"column {c.name!r} has type {schema.field(c.name).type}, expected {c.type}")
    out += [f"column {x!r} is not in the {spec.kind} schema{_suggest(x, list(spec.names))}"
            for x in schema.names if x not in spec.names]
    return out


def _flag(bad: np.ndarray, rows: np.ndarray, where: pa.Array) -> None:
    hit = np.asarray(pc.fill_null(where, False).to_numpy(zero_copy_only=False), dtype=bool)
    if hit.any():
        bad[rows[hit]] = True


def _nested_bad(values: pa.Array, tp: pa.DataType, rows: np.ndarray, bad: np.ndarray,
                choices: Mapping[str, tuple[str, ...]], sub: str, nullable: bool) -> None:
    """Mark the rows (``rows[i]`` owns ``values[i]``) holding a required null, a value outside its
    enumeration, or a non-finite number, at any depth."""
    if not nullable and values.null_count:
        _flag(bad, rows, values.is_null())
    if pa.types.is_string(tp) and choices.get(sub):
        _flag(bad, rows, pc.invert(pc.is_in(values, value_set=pa.array(choices[sub]), skip_nulls=True)))
    elif pa.types.is_floating(tp):
        _flag(bad, rows, pc.invert(pc.is_finite(values)))
    elif pa.types.is_map(tp):  # list_parent_indices aborts on maps (Arrow 26): derive parents from offsets
        offsets = values.offsets.to_numpy()
        parents = rows[np.repeat(np.arange(len(values)), np.diff(offsets))]
        items = values.items.slice(offsets[0], offsets[-1] - offsets[0])
        _nested_bad(items, tp.item_type, parents, bad, choices, sub, False)
    elif pa.types.is_list(tp):
        parents = rows[pc.list_parent_indices(values).to_numpy()]
        _nested_bad(pc.list_flatten(values), tp.value_type, parents, bad, choices, sub, False)
    elif pa.types.is_struct(tp):
        for i, f in enumerate(tp):
            child = pc.struct_field(values, [i])
            _nested_bad(child, f.type, rows, bad, choices, f"{sub}.{f.name}".lstrip("."), f.nullable)


def bad_row_mask(spec: ShardSpec, table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """A bool per row: True where the row breaks a rule (the table's schema must already match)."""
    bad = np.zeros(table.num_rows, dtype=bool)
    rows = np.arange(table.num_rows)
    for c in spec.columns:
        col = table.column(c.name)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        _nested_bad(col, c.type, rows, bad, c.choices, "", c.nullable)
    for check in spec.row_checks:
        bad |= check.bad_rows(table)
    return bad


def to_json(tp: pa.DataType, value: Any) -> Any:
    """Arrow's Python value to plain JSON: maps to objects; float32 to its shortest exact decimal."""
    if value is None:
        return None
    if pa.types.is_map(tp):
        return {k: to_json(tp.item_type, v) for k, v in value}
    if pa.types.is_list(tp):
        if pa.types.is_float32(tp.value_type):
            return [None if v is None else float(str(np.float32(v))) for v in value]
        return [to_json(tp.value_type, v) for v in value]
    if pa.types.is_struct(tp):
        return {f.name: to_json(f.type, value.get(f.name)) for f in tp}
    if pa.types.is_float32(tp):
        return float(str(np.float32(value)))  # 0.3, not 0.30000001192092896; the same float32 on reload
    return value


def row_record(table: pa.Table | pa.RecordBatch, i: int) -> dict[str, Any]:
    """Row ``i`` of an Arrow table as a JSON-ready dict."""
    return {name: to_json(table.schema.field(name).type, table.column(name)[i].as_py()) for name in table.schema.names}


# ---------------------------------------------------------------- batches entering an actor


class BatchSchemaError(ValueError):
    """An Arrow batch that does not match its shard schema, naming the column and the producer."""


def validate_batch(batch: pa.RecordBatch | pa.Table, kind: str, producer: str) -> None:
    """Check a batch where it enters an actor: columns, types, nulls, enumerations and row rules.

    Vectorised: a clean batch is never converted to Python rows. Raises :class:`BatchSchemaError`
    naming the shard, the producer, the column and (for row rules) the first bad rows.
    """
    spec = shard_spec(kind)
    problems = schema_problems(spec, batch.schema)
    if not problems:
        bad = np.flatnonzero(bad_row_mask(spec, batch))
        for i in bad[:3]:
            problems += [f"row {i}: {p}" for p in record_problems(spec, row_record(batch, int(i)))]
        if len(bad) > 3:
            problems.append(f"… {len(bad) - 3} more bad rows")
    if problems:
        raise BatchSchemaError(f"{kind} batch from {producer}: " + "; ".join(problems))
