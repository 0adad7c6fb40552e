"""Cross-column rules of a shard row, each in two forms that must agree.

``row(record)`` explains one JSON record's problem (for ``FILE:LINE`` messages); ``bad_rows(table)``
finds the offending rows of an Arrow table with vectorised compute, so clean Arrow data is checked
without converting rows to Python. ``tests/data/test_rowchecks.py`` checks the two forms agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _column(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _mask(arr: pa.Array) -> np.ndarray:
    """Boolean Arrow array → numpy bool, null counted as False (not bad)."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class SameLength:
    """Per-token list columns of a row have equal lengths (null columns are skipped)."""

    names: tuple[str, ...]

    def row(self, rec: Mapping[str, Any]) -> str | None:
        lengths = {n: len(rec[n]) for n in self.names if rec.get(n) is not None}
        if len(set(lengths.values())) > 1:
            return "per-token columns differ in length: " + ", ".join(f"{n}={k}" for n, k in lengths.items())
        return None

    def bad_rows(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        lengths = [pc.list_value_length(_column(table, n)) for n in self.names]
        bad = np.zeros(table.num_rows, dtype=bool)
        first = lengths[0]
        for other in lengths[1:]:
            bad |= _mask(pc.not_equal(first, other))
        return bad


@dataclass(frozen=True)
class NonPositive:
    """Every value of a log-probability column (per token, or one per row) is <= 0."""

    name: str

    def row(self, rec: Mapping[str, Any]) -> str | None:
        value = rec.get(self.name)
        if isinstance(value, (int, float)):
            return f"{self.name} = {value}: a log-probability must be <= 0" if value > 0 else None
        values = value or ()
        bad = [i for i, v in enumerate(values) if v > 0]
        return f"{self.name}[{bad[0]}] = {values[bad[0]]}: a log-probability must be <= 0" if bad else None

    def bad_rows(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        col = _column(table, self.name)
        if not pa.types.is_list(col.type):
            return _mask(pc.greater(col, 0))
        bad = np.zeros(table.num_rows, dtype=bool)
        positive = _mask(pc.greater(pc.list_flatten(col), 0))
        if positive.any():
            parents = pc.list_parent_indices(col).to_numpy()
            bad[parents[positive]] = True
        return bad


@dataclass(frozen=True)
class NonEmpty:
    """A list or string column is not empty."""

    name: str

    def row(self, rec: Mapping[str, Any]) -> str | None:
        return f"{self.name}: must not be empty" if not rec.get(self.name) else None

    def bad_rows(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        col = _column(table, self.name)
        size = pc.list_value_length(col) if pa.types.is_list(col.type) else pc.utf8_length(col)
        return _mask(pc.equal(size, 0)) | _mask(pc.is_null(col))


@dataclass(frozen=True)
class Differs:
    """Two text columns of a row differ (a preference pair must compare two things)."""

    a: str
    b: str

    def row(self, rec: Mapping[str, Any]) -> str | None:
        return f"{self.a} and {self.b} are the same text: a pair must differ" if rec.get(self.a) == rec.get(self.b) else None

    def bad_rows(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        return _mask(pc.equal(_column(table, self.a), _column(table, self.b)))


RowCheck = SameLength | NonPositive | NonEmpty | Differs
