"""Strategies and oracles for fuzzing the shard readers and writers.

Valid records of every shard kind are drawn from the schema itself (plus the example files), written
as JSONL or Parquet, then corrupted. The oracles state the readers' contract (``ouro_ray/data/shards.py``):
a read returns rows that all validate, or raises :class:`ShardError` whose every bad record is located
(``FILE:LINE`` of a JSONL line, ``FILE:row N`` of a Parquet row, or ``FILE`` for a file that cannot be
read at all) and says what is wrong; with a quarantine file nothing is raised and good + bad = records.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from _paths import EXAMPLES
from hypothesis import reject
from hypothesis import strategies as st

from ouro_ray.data import SHARDS, ShardError, read_shard, record_problems, to_table, validate_batch
from ouro_ray.data.rowchecks import Differs, NonEmpty, NonPositive, SameLength
from ouro_ray.data.schemas import ShardSpec
from ouro_ray.data.validate import row_record

KINDS = sorted(SHARDS)
EXAMPLE_FILES = {"dialogs": "dialogs", "summaries": "summaries", "labyrinth": "labyrinth", "scores": "scores",
                 "pairs": "pairs", "prompts": "behavior_prompts"}
JSON_BLANK = b" \t\r"  # JSON's whitespace besides the newline that ends a line: a line of only these is no record

# ---------------------------------------------------------------- valid records, from the schema

_FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _value(tp: pa.DataType, choices: dict, sub: str, nullable: bool, *, nonempty: bool = False,
           nonpositive: bool = False, length: int | None = None) -> st.SearchStrategy:
    """Values of Arrow type ``tp`` that pass every column rule (enumerations, row checks on this column)."""
    if nullable:
        return st.none() | _value(tp, choices, sub, False, nonempty=nonempty, nonpositive=nonpositive, length=length)
    if pa.types.is_string(tp):
        if choices.get(sub):
            return st.sampled_from(choices[sub])
        return st.text(min_size=1 if nonempty else 0, max_size=12)
    if pa.types.is_integer(tp):
        bits = tp.bit_width - 1
        return st.integers(-(2**bits), 2**bits - 1)
    if pa.types.is_floating(tp):
        return _FLOAT32.map(lambda v: -abs(v)) if nonpositive else _FLOAT32
    if pa.types.is_boolean(tp):
        return st.booleans()
    if pa.types.is_map(tp):
        return st.dictionaries(st.text(max_size=8), _value(tp.item_type, choices, sub, False), max_size=3)
    if pa.types.is_list(tp):
        item = _value(tp.value_type, choices, sub, False, nonpositive=nonpositive)
        if length is not None:
            return st.lists(item, min_size=length, max_size=length)
        return st.lists(item, min_size=1 if nonempty else 0, max_size=4)
    if pa.types.is_struct(tp):
        return st.fixed_dictionaries({
            f.name: _value(f.type, choices, f"{sub}.{f.name}".lstrip("."), f.nullable) for f in tp
        })
    raise TypeError(f"no strategy for Arrow type {tp}")


@functools.lru_cache(maxsize=None)
def _record_strategy(kind: str, length: int) -> st.SearchStrategy:
    """Records of ``kind`` whose SameLength columns hold ``length`` items (built once: strategies are costly)."""
    spec = SHARDS[kind]
    nonempty = {c.name for c in spec.row_checks if isinstance(c, NonEmpty)}
    nonpositive = {c.name for c in spec.row_checks if isinstance(c, NonPositive)}
    same = {n for c in spec.row_checks if isinstance(c, SameLength) for n in c.names}
    return st.fixed_dictionaries({
        c.name: _value(c.type, dict(c.choices), "", c.nullable, nonempty=c.name in nonempty,
                       nonpositive=c.name in nonpositive, length=length if c.name in same else None)
        for c in spec.columns
    })


@st.composite
def valid_record(draw: st.DrawFn, spec: ShardSpec) -> dict[str, Any]:
    same = {n for c in spec.row_checks if isinstance(c, SameLength) for n in c.names}
    nonempty = {c.name for c in spec.row_checks if isinstance(c, NonEmpty)}
    rec = draw(_record_strategy(spec.kind, draw(st.integers(1 if same & nonempty else 0, 4))))
    for check in spec.row_checks:
        if isinstance(check, Differs) and rec[check.a] == rec[check.b]:
            rec[check.b] = rec[check.a] + "!"
    problems = record_problems(spec, rec)
    assert not problems, f"the generator drew an invalid {spec.kind} record {rec!r}: {problems}"
    return rec


def _key(spec: ShardSpec):
    return lambda rec: tuple(rec[k] for k in spec.key) if spec.key else id(rec)


def example_records(kind: str) -> list[dict[str, Any]]:
    path = EXAMPLES / f"{EXAMPLE_FILES[kind]}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@st.composite
def valid_records(draw: st.DrawFn, kind: str, max_rows: int = 5) -> list[dict[str, Any]]:
    """A valid shard's records: the example file of the kind, or drawn from the schema (unique keys)."""
    spec = SHARDS[kind]
    if kind in EXAMPLE_FILES and draw(st.booleans()):
        return example_records(kind)
    return draw(st.lists(valid_record(spec), max_size=max_rows, unique_by=_key(spec)))


# ---------------------------------------------------------------- corruption of JSON records and JSONL text

# Raw JSON fragments put where a value was: wrong types, NaN/inf, numbers too large for any column or for
# Python's int parser, deep nesting, lone surrogate escapes.
WEIRD_JSON = [
    "null", "true", "0", "-1", "3.5", '""', '"x"', "[]", "{}", "[1, 2]", '{"a": 1}', '["a", 1]', "[[1]]",
    "NaN", "Infinity", "-Infinity", "1e39", "-1e39", "3.4028236e38", "1e400", "-1e400", "2147483648",
    "9223372036854775808", "1" + "0" * 400, "1" + "0" * 5000, "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000,
    '"\\ud800"', '"a\\udfff"', '["\\ud83d"]', '{"\\ud800": 1.0}', '"\\u0000"', '"\\ud83d\\ude00"',
]
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
).map(lambda v: json.dumps(v))
weird_json = st.sampled_from(WEIRD_JSON) | _JSON_VALUES


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside a JSON value: dict keys and list indexes, at any depth."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _parent(rec: Any, path: tuple) -> Any:
    for k in path[:-1]:
        rec = rec[k]
    return rec


@st.composite
def corrupt_record(draw: st.DrawFn, rec: dict[str, Any], kind: str, raw: dict[str, str]) -> dict[str, Any]:
    """A corrupted copy of ``rec``: a value replaced by a marker string whose quoted form :func:`dump_record`
    swaps for raw JSON text (added to ``raw``), a key deleted, or a key added."""
    rec = json.loads(json.dumps(rec))
    paths = _paths(rec)
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "replace" and paths:
        path = draw(st.sampled_from(paths))
        marker = f"@@fuzz{len(raw)}@@"
        raw[json.dumps(marker)] = draw(weird_json)
        _parent(rec, path)[path[-1]] = marker
    elif op == "delete" and paths:
        path = draw(st.sampled_from(paths))
        del _parent(rec, path)[path[-1]]
    else:
        dicts = [()] + [p for p in paths if isinstance(_parent(rec, p + ("x",)), dict)]
        where = draw(st.sampled_from(dicts))
        target = _parent(rec, where + ("x",))
        names = [*SHARDS[kind].names, *(n + "s" for n in SHARDS[kind].names), "extra", "\ud800"]
        target[draw(st.sampled_from(names) | st.text(max_size=6))] = draw(st.integers(-3, 3) | st.text(max_size=4))
    return rec


def dump_record(rec: Any, raw: dict[str, str], ensure_ascii: bool) -> bytes:
    text = json.dumps(rec, ensure_ascii=ensure_ascii)
    for marker, fragment in raw.items():
        text = text.replace(marker, fragment)
    return text.encode("utf-8", errors="surrogatepass")  # a lone surrogate written raw is invalid UTF-8: wanted


JUNK_LINES = [b"", b"   ", b"\t", b"\r", b"\xc2\xa0", b"\x0b", b"null", b"[]", b"{}", b"42", b'"text"', b"{", b"}",
              b'{"a": 1} {"b": 2}', b"\xff\xfe", b"\xed\xa0\x80", b"\xef\xbb\xbf{}", b"\x00", b"[" * 5000]


@st.composite
def corrupt_lines(draw: st.DrawFn, lines: list[bytes]) -> list[bytes]:
    """One line-level edit: delete, duplicate, swap, or insert a junk line."""
    lines = list(lines)
    op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
    if op == "insert" or not lines:
        junk = draw(st.sampled_from(JUNK_LINES) | st.binary(max_size=20))
        lines.insert(draw(st.integers(0, len(lines))), junk)
    elif op == "delete":
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif op == "duplicate":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(draw(st.integers(0, len(lines))), lines[i])
    else:
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return lines


INVALID_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\x80"]


@st.composite
def corrupt_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """One byte-level edit: flip, insert, delete, truncate, a stray carriage return, invalid UTF-8."""
    op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "cr", "utf8"]))
    pos = draw(st.integers(0, len(data)))
    if op == "truncate":
        return data[:pos]
    if op == "delete":
        return data[:pos] + data[pos + draw(st.integers(1, 8)):]
    if op == "flip" and pos < len(data):
        return data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1:]
    insert = {"cr": b"\r", "utf8": draw(st.sampled_from(INVALID_UTF8))}.get(op) or draw(st.binary(min_size=1, max_size=4))
    return data[:pos] + insert + data[pos:]


@st.composite
def corrupted_jsonl(draw: st.DrawFn, kind: str) -> bytes:
    """A valid JSONL shard of ``kind`` with 0-3 corruptions of records, lines and bytes."""
    records = draw(valid_records(kind))
    ensure_ascii = draw(st.booleans())
    raws: list[dict[str, str]] = [{} for _ in records]
    for _ in range(draw(st.integers(0, 2)) if records else 0):
        i = draw(st.integers(0, len(records) - 1))
        records[i] = draw(corrupt_record(records[i], kind, raws[i]))
    lines = [dump_record(r, raw, ensure_ascii) for r, raw in zip(records, raws)]
    for _ in range(draw(st.integers(0, 2))):
        lines = draw(corrupt_lines(lines))
    data = b"\n".join(lines) + (b"\n" if lines and draw(st.booleans()) else b"")
    if draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n")
    for _ in range(draw(st.integers(0, 2))):
        data = draw(corrupt_bytes(data))
    return data


# ---------------------------------------------------------------- Parquet files, valid and not

# (Arrow type, a value of it): what a column of the wrong type holds.
WRONG_TYPES = [
    (pa.int64(), 7), (pa.int32(), -1), (pa.float64(), 0.5), (pa.float64(), float("nan")), (pa.float32(), -0.25),
    (pa.string(), "x"), (pa.large_string(), "x"), (pa.binary(), b"\xff\x00"), (pa.bool_(), True),
    (pa.list_(pa.string()), ["a"]), (pa.list_(pa.int64()), [1, 2]), (pa.list_(pa.float64()), [-0.5]),
    (pa.large_list(pa.int32()), [3]), (pa.date32(), datetime.date(2001, 2, 3)),
    (pa.timestamp("s"), datetime.datetime(2001, 2, 3, 4, 5, 6)), (pa.decimal128(5, 2), decimal.Decimal("1.25")),
    (pa.struct([("role", pa.string()), ("text", pa.int64())]), {"role": "human", "text": 1}),
    (pa.map_(pa.string(), pa.float64()), [("a", 1.0)]), (pa.map_(pa.int32(), pa.float32()), [(1, 1.0)]),
    (pa.dictionary(pa.int32(), pa.string()), "safe"), (pa.null(), None),
]


def wrong_column(tp: pa.DataType, sample: Any, n: int, with_nulls: bool) -> pa.Array:
    values = [None if with_nulls and i % 2 else sample for i in range(n)]
    if pa.types.is_dictionary(tp):
        return pa.array(values, pa.string()).dictionary_encode()
    return pa.array(values, tp)


@st.composite
def wrong_schema(draw: st.DrawFn, table: pa.Table) -> pa.Table:
    """The table with one schema change: a column dropped, added, renamed, repeated, moved, retyped,
    made nullable or given nulls."""
    names = table.column_names
    op = draw(st.sampled_from(["drop", "add", "rename", "duplicate", "reorder", "retype", "nullable", "nulls"]))
    i = draw(st.integers(0, len(names) - 1))
    if op == "drop":
        return table.remove_column(i)
    if op == "rename":
        return table.rename_columns([n + "x" if j == i else n for j, n in enumerate(names)])
    if op == "duplicate":
        return table.append_column(names[i], table.column(i))
    if op == "reorder":
        order = draw(st.permutations(names))
        return table.select(list(order))
    if op == "nullable":
        return table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))
    if op == "nulls":
        return table.set_column(i, pa.field(names[i], table.schema.field(i).type, nullable=True),
                                pa.nulls(table.num_rows, table.schema.field(i).type))
    tp, sample = draw(st.sampled_from(WRONG_TYPES))
    column = wrong_column(tp, sample, table.num_rows, draw(st.booleans()))
    if op == "add":
        return table.append_column(draw(st.sampled_from(["extra", names[i] + "s"])), column)
    return table.set_column(i, names[i], column)


def parquet_bytes(table: pa.Table, compression: str, row_group_size: int | None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression, row_group_size=row_group_size)
    return buf.getvalue()


@st.composite
def corrupted_parquet(draw: st.DrawFn, kind: str) -> bytes:
    """A Parquet shard of ``kind``, then perhaps a wrong schema, bytes flipped, the footer cut or truncated."""
    table = to_table(draw(valid_records(kind)), kind)
    if draw(st.booleans()):
        table = draw(wrong_schema(table))
    try:
        data = parquet_bytes(table, draw(st.sampled_from(["snappy", "none", "zstd"])), draw(st.sampled_from([None, 1, 2])))
    except pa.ArrowInvalid:  # a null struct whose non-nullable fields Arrow's writer then refuses: no file to read
        reject()
    op = draw(st.sampled_from(["none", "flip", "flip", "footer", "truncate", "junk"]))
    if op == "flip":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    if op == "footer":  # the footer is the last 8 bytes (length + magic) and the metadata before them
        return data[:-draw(st.integers(1, min(len(data), 400)))]
    if op == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if op == "junk":
        return draw(st.sampled_from([b"", b"PAR1", b"PAR1PAR1", b"not parquet"]) | st.binary(max_size=64))
    return data


# ---------------------------------------------------------------- oracles


def check_table(table: pa.Table, kind: str) -> None:
    """A table a reader returned: the shard's schema, every row valid (both validation paths), keys unique."""
    spec = SHARDS[kind]
    assert table.schema.equals(spec.schema), f"{kind}: returned schema\n{table.schema}\nis not the shard's\n{spec.schema}"
    table.validate(full=True)
    validate_batch(table, kind, "the fuzzed reader")
    for i in range(table.num_rows):
        assert not record_problems(spec, row_record(table, i)), f"{kind}: returned row {i} is invalid"
    if spec.key:
        keys = list(zip(*(table.column(k).to_pylist() for k in spec.key)))
        assert len(set(keys)) == len(keys), f"{kind}: returned rows repeat a key"


def check_located(err: ShardError, path: Path, pattern: str) -> list[str]:
    """Every bad record of ``err`` is located by ``pattern`` (a regex for what follows ``FILE``) and says what
    is wrong; the message starts with the file and the count. Returns the locations."""
    assert str(err).startswith(f"{path}: {len(err.bad)} bad {err.kind} record(s)"), str(err)[:200]
    assert err.bad, "a ShardError with no bad record"
    where = re.compile(re.escape(str(path)) + pattern)
    for b in err.bad:
        assert where.fullmatch(b.location), f"bad record located at {b.location!r}, not {path}{pattern}"
        assert b.problems and all(isinstance(p, str) and p.strip() for p in b.problems), b
    return [b.location for b in err.bad]


def record_lines(data: bytes) -> dict[int, bytes]:
    """The JSONL records of a file by line number: lines end at b"\\n" (as ``wc -l``, editors and ``sed -n Np``
    count them); a line of only JSON whitespace is no record."""
    return {n: line for n, line in enumerate(data.split(b"\n"), start=1) if line.strip(JSON_BLANK)}


def check_jsonl_read(path: Path, kind: str, data: bytes, quarantine: Path) -> None:
    records = record_lines(data)
    try:
        read = read_shard(path, kind)
    except ShardError as err:
        locations = check_located(err, path, r":(\d+)")
        numbers = [int(loc.rsplit(":", 1)[1]) for loc in locations]
        assert numbers == sorted(set(numbers)), f"bad records out of order or repeated: {numbers}"
        for b, n in zip(err.bad, numbers):
            assert n in records, f"{b.location} is not a line holding a record"
            line = records[n].removesuffix(b"\r").decode("utf-8", errors="replace")
            assert b.raw == line, f"{b.location}: raw {b.raw[:80]!r} is not line {n}: {line[:80]!r}"
        strict = err.bad
    else:
        check_table(read.table, kind)
        assert (read.n_bad, read.table.num_rows) == (0, len(records))
        strict = []
    read = read_shard(path, kind, quarantine=quarantine)
    check_table(read.table, kind)
    assert read.n_bad == len(strict)
    assert read.table.num_rows + read.n_bad == len(records), "good + bad is not the number of records"
    check_quarantine(quarantine, strict)


def check_quarantine(quarantine: Path, bad: list) -> None:
    if not bad:
        assert not quarantine.exists(), "a quarantine file written for a clean shard"
        return
    # split at "\n" only: str.splitlines would also split at U+0085 or U+2028 inside a record's text
    entries = [json.loads(line) for line in quarantine.read_text(encoding="utf-8").split("\n") if line]
    assert [(e["source"], tuple(e["problems"]), e["record"]) for e in entries] == \
        [(b.location, b.problems, b.raw) for b in bad]


def check_parquet_read(path: Path, kind: str, quarantine: Path) -> None:
    try:
        rows_in_file = pq.read_table(path).num_rows  # the oracle's own read; None: Arrow cannot read the file
    except Exception:  # any failure of Arrow's own reader: the file is unreadable
        rows_in_file = None
    try:
        read = read_shard(path, kind)
    except ShardError as err:
        locations = check_located(err, path, r"(:row [1-9]\d*)?")
        file_level = [loc for loc in locations if loc == str(path)]
        assert not file_level or len(err.bad) == 1, "a file-level problem among row problems"
        strict = err.bad
    else:
        check_table(read.table, kind)
        assert read.n_bad == 0 and read.table.num_rows == rows_in_file
        strict = []
    read = read_shard(path, kind, quarantine=quarantine)
    check_table(read.table, kind)
    assert read.n_bad == len(strict)
    if strict and strict[0].location == str(path):
        assert read.table.num_rows == 0
    else:
        assert rows_in_file is not None, "Arrow cannot read the file, yet the reader returned rows from it"
        assert read.table.num_rows + read.n_bad == rows_in_file, "good + bad is not the number of rows"
    check_quarantine(quarantine, strict)


def dir_state(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}

