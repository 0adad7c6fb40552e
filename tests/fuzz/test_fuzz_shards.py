"""Fuzzing the shard readers and writers: corrupted JSONL and Parquet files of every kind, invalid data handed
to the writer. The contract (``ouro_ray/data/shards.py``): valid rows, or a :class:`ShardError` locating every
bad record and saying what is wrong; with a quarantine file good + bad = records; a rejected write leaves
the target as it was and no temporary file behind. Never another exception type."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from fuzz._data import (
    KINDS,
    check_jsonl_read,
    check_parquet_read,
    corrupted_jsonl,
    corrupted_parquet,
    dir_state,
    valid_records,
    wrong_schema,
)
from fuzz._profile import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ouro_ray.data import ShardError, read_shard, to_table, write_shard


@contextmanager
def fresh_dir() -> Iterator[Path]:
    """A directory per example (pytest's tmp_path is one per test, shared by all its examples)."""
    with tempfile.TemporaryDirectory(prefix="ouro-fuzz-") as tmp:
        yield Path(tmp)


@settings(max_examples=examples(300))
@given(st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), corrupted_jsonl(kind))))
def test_corrupted_jsonl_gives_valid_rows_or_located_errors(case: tuple[str, bytes]) -> None:
    kind, data = case
    with fresh_dir() as tmp:
        path = tmp / f"{kind}.jsonl"
        path.write_bytes(data)
        check_jsonl_read(path, kind, data, tmp / "q" / "quarantine.jsonl")


@settings(max_examples=examples(200))
@given(st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), corrupted_parquet(kind))))
def test_corrupted_parquet_gives_valid_rows_or_located_errors(case: tuple[str, bytes]) -> None:
    kind, data = case
    with fresh_dir() as tmp:
        path = tmp / f"{kind}.parquet"
        path.write_bytes(data)
        check_parquet_read(path, kind, tmp / "q" / "quarantine.jsonl")


# ---------------------------------------------------------------- the writer

# Python values a caller might hand the writer by mistake: JSON's, and what JSON does not have.
_ODD = st.sampled_from([
    None, True, 1.5, float("nan"), float("inf"), 1e39, 10**400, -(2**63) - 1, "", "\ud800", b"bytes", (1, 2), {1, 2},
    {1: "int key"}, {"a": object()}, [None], [float("nan")], ["x", 1], object(),
]) | st.builds(lambda: 2**20000) | st.builds(lambda: [2**20000])  # too long to print: built lazily, never shown
_PY_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | _ODD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def writer_input(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, data): records perhaps with a value replaced, a key dropped or added, or a non-record among them;
    or an Arrow table perhaps of a wrong schema."""
    kind = draw(st.sampled_from(KINDS))
    records = draw(valid_records(kind, max_rows=3))
    if records and draw(st.booleans()):
        table = to_table(records, kind)
        return kind, draw(wrong_schema(table)) if draw(st.booleans()) else table
    records = [dict(r) for r in records]
    for _ in range(draw(st.integers(0, 2)) if records else 0):
        rec = records[draw(st.integers(0, len(records) - 1))]
        op = draw(st.sampled_from(["value", "drop", "add", "nested"]))
        name = draw(st.sampled_from(list(rec)))
        if op == "value":
            rec[name] = draw(_PY_VALUES)
        elif op == "drop":
            del rec[name]
        elif op == "add":
            rec[draw(st.text(max_size=5) | st.integers())] = draw(_PY_VALUES)
        elif isinstance(rec[name], dict) and rec[name]:
            rec[name] = {**rec[name], draw(st.sampled_from(list(rec[name]))): draw(_PY_VALUES)}
        elif isinstance(rec[name], list) and rec[name]:
            rec[name] = [draw(_PY_VALUES)] + rec[name][1:]
    if draw(st.integers(0, 9)) == 0:
        records.insert(draw(st.integers(0, len(records))), draw(_PY_VALUES))
    return kind, records


@settings(max_examples=examples(200))
@given(writer_input(), st.sampled_from(["jsonl", "parquet"]), st.booleans())
def test_writer_rejects_invalid_data_before_writing_anything(case: tuple[str, Any], fmt: str, exists: bool) -> None:
    kind, data = case
    with fresh_dir() as tmp:
        path = tmp / f"{kind}.{fmt}"
        if exists:
            path.write_bytes(b"what was there before\n")
        before = dir_state(tmp)
        try:
            written = write_shard(data, path, kind)
        except ShardError as err:
            assert dir_state(tmp) == before, "a rejected write changed the directory"
            assert str(err).startswith(f"<in memory>: {len(err.bad)} bad {kind} record(s)")
            assert all(b.problems for b in err.bad)
            return
        assert written == path and set(dir_state(tmp)) == {path.name}, "a temporary file left behind"
        back = read_shard(path, kind).table
        assert back.equals(to_table(data, kind)), "what was written does not read back"

