"""Each bug the shard fuzzers found, kept as an explicit example (``test_fuzz_shards.py`` found them)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fuzz._data import check_jsonl_read, check_parquet_read

from ouro_ray.data import SHARDS, BatchSchemaError, ShardError, read_shard, to_table, validate_batch, write_shard

PROMPT = b'{"prompt_id": "p1", "prompt": "Hi", "label": "safe"}'
RM = '{"prompt_id": "p", "candidate_id": "c", "reward": %s, "reward_model_version": 1}'


def _jsonl(tmp_path: Path, data: bytes, kind: str = "prompts") -> Path:
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(data)
    return path


def _only_problem(path: Path, kind: str = "prompts") -> str:
    with pytest.raises(ShardError) as err:
        read_shard(path, kind)
    [bad] = err.value.bad
    [problem] = bad.problems
    return f"{bad.location}: {problem}"


# ---------------------------------------------------------------- JSONL text


def test_a_line_that_is_not_utf8_is_one_bad_record_and_the_rest_is_read(tmp_path: Path) -> None:
    # was: UnicodeDecodeError for the whole file, even with a quarantine (a writer killed mid-character)
    data = PROMPT + b'\n{"prompt_id": "p2", "prompt": "caf\xc3", "label": "safe"}\n'
    path = _jsonl(tmp_path, data)
    assert _only_problem(path) == f"{path}:2: not valid UTF-8 (byte 0xc3 at column 35)"
    read = read_shard(path, "prompts", quarantine=tmp_path / "q.jsonl")
    assert (read.table.num_rows, read.n_bad) == (1, 1)
    check_jsonl_read(path, "prompts", data, tmp_path / "q2.jsonl")


def test_deeply_nested_json_is_a_bad_record(tmp_path: Path) -> None:
    # was: RecursionError
    path = _jsonl(tmp_path, b"[" * 100_000 + b"\n")
    assert _only_problem(path) == f"{path}:1: not valid JSON (nested too deeply)"


def test_a_number_longer_than_pythons_int_limit_is_a_bad_record(tmp_path: Path) -> None:
    # was: ValueError "Exceeds the limit (4300 digits)" naming neither file nor line
    path = _jsonl(tmp_path, (RM % ("1" * 5000)).encode())
    assert _only_problem(path, "rm_rewards") == f"{path}:1: not valid JSON (a number of more than 4300 digits)"


def test_a_lone_surrogate_is_a_bad_record_and_quarantines(tmp_path: Path) -> None:
    # was: UnicodeEncodeError from Arrow; then again writing the quarantine (an unknown key "\udc00")
    data = b'{"prompt_id": "p1", "prompt": "a\\ud800", "label": "safe", "\\udc00": 1}\n'
    path = _jsonl(tmp_path, data)
    with pytest.raises(ShardError) as err:
        read_shard(path, "prompts")
    assert f"{path}:1: prompt: not valid Unicode: a lone surrogate \\ud800 at character 2" in str(err.value)
    read = read_shard(path, "prompts", quarantine=tmp_path / "q.jsonl")
    assert read.n_bad == 1
    [entry] = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text(encoding="utf-8").split("\n") if line]
    assert entry["record"] == data.decode().rstrip("\n") and entry["problems"][0].startswith("\udc00: unknown field")
    # a surrogate key inside a struct: was UnicodeEncodeError from Arrow's get_field_index, before validation
    target = '{"facts": null, "voice": null, "constraints": null, "behavior": "answer", "\\ud800": 0}'
    line = '{"dialog_id": "d", "prompt_id": "p", "kind": "rephrase", "prompt": "x", "target": %s, "group_id": null}'
    path = _jsonl(tmp_path, (line % target).encode(), "labyrinth")
    assert _only_problem(path, "labyrinth").startswith(f"{path}:1: target.\ud800: unknown field")


@pytest.mark.parametrize("number", ["1e39", "-3.5e38", "1" + "0" * 400])
def test_a_number_too_large_for_float32_is_refused_not_made_infinite(tmp_path: Path, number: str) -> None:
    # was: 1e39 read as reward = inf (a row that then fails validation); 10**400 raised OverflowError
    path = _jsonl(tmp_path, (RM % number).encode(), "rm_rewards")
    assert f"{path}:1: reward: " in _only_problem(path, "rm_rewards")
    assert "is too large for float32 (it would be infinite)" in _only_problem(path, "rm_rewards")
    logprobs = '{"prompt_id": "p", "candidate_id": "c", "ref_logprobs": [-0.5, -%s]}' % number.lstrip("-")
    path = _jsonl(tmp_path, logprobs.encode(), "reference_logprobs")
    assert _only_problem(path, "reference_logprobs").startswith(f"{path}:1: ref_logprobs[1]: -")


def test_lines_end_at_newline_only_so_a_stray_carriage_return_keeps_line_numbers(tmp_path: Path) -> None:
    # was: text mode also ended lines at a lone \r: "junk" became line 2 and every later line shifted
    data = PROMPT[:-1] + b'\r, "x": 1}\nnot json\n'
    path = _jsonl(tmp_path, data)
    with pytest.raises(ShardError) as err:
        read_shard(path, "prompts")
    assert [b.location for b in err.value.bad] == [f"{path}:1", f"{path}:2"]
    check_jsonl_read(path, "prompts", data, tmp_path / "q.jsonl")


def test_crlf_files_still_read(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, PROMPT + b"\r\n\r\n" + PROMPT.replace(b"p1", b"p2") + b"\r\n")
    assert read_shard(path, "prompts").table.num_rows == 2


def test_a_line_of_non_json_whitespace_is_a_bad_record_not_a_blank(tmp_path: Path) -> None:
    # was: skipped silently (str.strip() also strips NBSP, \x0b, \x1c ...), so good + bad != records
    path = _jsonl(tmp_path, PROMPT + b"\n\xc2\xa0\n \t\n")
    assert _only_problem(path).startswith(f"{path}:2: not valid JSON")


# ---------------------------------------------------------------- Parquet files


def _parquet(tmp_path: Path, table: pa.Table, kind: str = "prompts", **options) -> Path:
    path = tmp_path / f"{kind}.parquet"
    pq.write_table(table, path, **options)
    return path


def _prompts(**columns) -> pa.Table:
    base = {"prompt_id": ["p1", "p2"], "prompt": ["hello", "world"], "label": ["safe", "unsafe"]}
    return pa.table({**base, **columns})


@pytest.mark.parametrize("cut", [1, 8, 200])
def test_a_parquet_file_with_its_footer_cut_is_one_located_bad_record(tmp_path: Path, cut: int) -> None:
    # was: ArrowInvalid/OSError from pyarrow, naming no shard and bypassing the quarantine
    path = _parquet(tmp_path, to_table(_prompts().to_pylist(), "prompts"))
    path.write_bytes(path.read_bytes()[:-cut])
    problem = _only_problem(path)
    assert problem.startswith(f"{path}: not a readable Parquet file (")
    read = read_shard(path, "prompts", quarantine=tmp_path / "q.jsonl")
    assert (read.table.num_rows, read.n_bad) == (0, 1)
    check_parquet_read(path, "prompts", tmp_path / "q2.jsonl")


def test_invalid_utf8_inside_a_parquet_string_is_caught_on_read(tmp_path: Path) -> None:
    # was: returned a table whose string could not be converted (UnicodeDecodeError later, anywhere)
    path = _parquet(tmp_path, _prompts(), compression="none", use_dictionary=False, write_statistics=False)
    path.write_bytes(path.read_bytes().replace(b"hello", b"hell\xff"))
    assert "Invalid UTF8" in _only_problem(path)


def test_a_corrupt_column_name_is_caught_on_read(tmp_path: Path) -> None:
    # was: UnicodeDecodeError from pyarrow's schema.names
    path = _parquet(tmp_path, _prompts(), store_schema=False)
    path.write_bytes(path.read_bytes().replace(b"prompt_id", b"prompt_i\xff"))
    assert _only_problem(path).startswith(f"{path}: not a readable Parquet file (UnicodeDecodeError")


@pytest.mark.parametrize("column", [pa.array([b"\xff", b"x"]), pa.array([1.5, None]).cast(pa.decimal128(5, 2))])
def test_a_parquet_column_of_a_type_json_lacks_is_a_located_problem(tmp_path: Path, column: pa.Array) -> None:
    # was: TypeError "Object of type bytes is not JSON serializable"
    path = _parquet(tmp_path, _prompts(prompt_id=column))
    with pytest.raises(ShardError) as err:
        read_shard(path, "prompts")
    assert str(err.value.bad[0].location) == f"{path}:row 1"
    assert err.value.bad[0].problems[0].startswith("prompt_id: expected a string, got ")


def test_a_repeated_column_is_named_everywhere(tmp_path: Path) -> None:
    # was: ArrowInvalid "Multiple matches for FieldRef" reading; KeyError from to_table and validate_batch
    table = _prompts().append_column("prompt", pa.array(["x", "y"]))
    path = _parquet(tmp_path, table)
    assert _only_problem(path) == f"{path}: column 'prompt' appears 2 times; fix: keep one of them"
    with pytest.raises(ShardError, match="column 'prompt' appears 2 times"):
        to_table(table, "prompts")
    with pytest.raises(BatchSchemaError, match="column 'prompt' appears 2 times"):
        validate_batch(table, "prompts", "a test")


def test_parquet_columns_in_another_order_or_nullable_read_as_the_shards_schema(tmp_path: Path) -> None:
    # was: the file's column order and nullability came back, not the shard's schema the docstring promises
    table = to_table(_prompts().to_pylist(), "prompts")
    loose = table.select(["label", "prompt", "prompt_id"]).cast(
        pa.schema([pa.field(n, pa.string(), nullable=True) for n in ("label", "prompt", "prompt_id")]))
    path = _parquet(tmp_path, loose)
    assert read_shard(path, "prompts").table.schema.equals(SHARDS["prompts"].schema)
    assert to_table(loose, "prompts").schema.equals(SHARDS["prompts"].schema)


# ---------------------------------------------------------------- the writer


def _target(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("before\n")
    return path


@pytest.mark.parametrize("record", [1, "a record?", None, ["p1", "Hi", "safe"]])
def test_a_record_that_is_not_an_object_is_a_bad_record(tmp_path: Path, record: object) -> None:
    # was: AttributeError ('int' object has no attribute 'items')
    path = _target(tmp_path)
    with pytest.raises(ShardError, match="record 1: expected a JSON object with prompt_id, prompt, label"):
        write_shard([record], path, "prompts")
    assert path.read_text() == "before\n" and [p.name for p in tmp_path.iterdir()] == ["prompts.jsonl"]


def test_non_string_keys_are_bad_fields_not_type_errors(tmp_path: Path) -> None:
    # was: TypeError from difflib (a top-level int key), from Arrow's get_field_index (a nested one), and
    # ArrowTypeError for a map with int keys
    with pytest.raises(ShardError, match="1: unknown field"):
        to_table([{"prompt_id": "p", "prompt": "x", "label": "safe", 1: "x"}], "prompts")
    persona = {"voice": "calm", "constraints": [], 2: "x"}
    with pytest.raises(ShardError, match="persona.2: unknown field"):
        to_table([{"dialog_id": "d", "facts": [], "logic": [], "persona": persona}], "summaries")
    score = {"prompt_id": "p", "candidate_id": "c", "scores": {1: 0.5}, "reward": 0.5, "rater": "ai",
             "teacher": None, "notes": None}
    with pytest.raises(ShardError, match="scores: key 1: expected a string, got int 1"):
        to_table([score], "scores")


def test_a_repeated_key_is_refused_before_writing(tmp_path: Path) -> None:
    # was: written, and then every read of the file refused it
    path = _target(tmp_path)
    rows = [{"prompt_id": "p1", "prompt": "a", "label": "safe"}, {"prompt_id": "p1", "prompt": "b", "label": "safe"}]
    with pytest.raises(ShardError, match=r"row 2: duplicate prompt_id 'p1' \(first at row 1\)"):
        write_shard(to_table(rows, "prompts"), path, "prompts")
    assert path.read_text() == "before\n" and [p.name for p in tmp_path.iterdir()] == ["prompts.jsonl"]



def test_a_number_too_long_to_print_is_still_a_bad_record() -> None:
    # was: ValueError (Exceeds the limit (4300 digits)) while writing the message about it
    with pytest.raises(ShardError, match="policy_version: <a int holding a number of over 4300 digits> does not fit"):
        to_table([{"prompt_id": "p", "candidate_id": "c", "text": "t", "prompt_token_ids": [1], "token_ids": [2],
                   "logprobs": [-1.0], "policy_version": 2**20000}], "candidates")
    with pytest.raises(ShardError, match="prompt: expected a string, got list <a list holding a number"):
        to_table([{"prompt_id": "p", "prompt": [2**20000], "label": "safe"}], "prompts")


def test_a_whole_number_in_a_float_column_is_read_even_when_float32_rounds_it(tmp_path: Path) -> None:
    # was: ArrowInvalid "Integer value 16777217 is outside of the range exactly representable by a IEEE 754 single
    # precision value" (JSON cannot tell 16777217 from 16777217.0, which Arrow rounds without complaint)
    path = _jsonl(tmp_path, (RM % "16777217").encode(), "rm_rewards")
    assert read_shard(path, "rm_rewards").table.column("reward").to_pylist() == [16777216.0]
    loose = pa.table({"prompt_id": ["p"], "candidate_id": ["c"], "ref_logprobs": [[-(2**40) - 1, 0]]})
    table = read_shard(_parquet(tmp_path, loose, "reference_logprobs"), "reference_logprobs").table
    assert table.column("ref_logprobs").to_pylist() == [[-(2.0**40), 0.0]]
