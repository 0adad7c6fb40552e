"""Shards: each kind round-trips JSONL ↔ Arrow ↔ Parquet; bad records are named FILE:LINE, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from _paths import EXAMPLES

from ouro_ray.data import SHARDS, ShardError, read_shard, scan_shard, table_to_records, to_table, write_shard

# One valid record per kind not covered by data/examples.
EXTRA = {
    "candidates": [
        {"prompt_id": "p1", "candidate_id": "c0", "text": "The Vell is 340 km long.",
         "prompt_token_ids": [1, 3, 7, 4], "token_ids": [5, 9, 12],
         "logprobs": [-0.25, -1.5, -0.125], "policy_version": 3},
    ],
    "experience": [
        {"prompt_id": "p1", "candidate_id": "c0", "prompt_token_ids": [1, 4], "token_ids": [5, 9],
         "old_logprobs": [-0.5, -1.0], "ref_logprobs": [-0.75, -1.0], "values": [0.1, 0.2], "reward": 0.5,
         "policy_version": 3},
        {"prompt_id": "p1", "candidate_id": "c1", "prompt_token_ids": [1, 4], "token_ids": [7],
         "old_logprobs": [-0.5], "ref_logprobs": [-0.5], "values": None, "reward": -1.0, "policy_version": 3},
    ],
    "token_sequences": [
        {"prompt_id": "p1", "candidate_id": "c0", "prompt_token_ids": [1, 3, 4], "token_ids": [5, 9, 2]},
    ],
    "preference_batch": [
        {"prompt_id": "p1", "prompt_token_ids": [1, 3, 4], "chosen_token_ids": [5, 9, 2], "rejected_token_ids": [7, 2],
         "ref_chosen_logps": -4.5, "ref_rejected_logps": -3.25},
        {"prompt_id": None, "prompt_token_ids": [1, 3], "chosen_token_ids": [6, 2], "rejected_token_ids": [8, 8, 2],
         "ref_chosen_logps": -2.0, "ref_rejected_logps": -6.0},
    ],
    "rewards": [
        {"prompt_id": "p1", "candidate_id": "c0", "reward": 0.5, "content": 0.25, "logic": None, "persona": 0.5,
         "safety": 1.0, "failure": "rule:persona", "source": "teachers", "disagreement": 0.75},
        {"prompt_id": "p1", "candidate_id": "c1", "reward": -1.0, "content": None, "logic": None, "persona": None,
         "safety": None, "failure": None, "source": "human", "disagreement": 0.0},
    ],
    "reference_logprobs": [
        {"prompt_id": "p1", "candidate_id": "c0", "ref_logprobs": [-0.75, -1.0]},
    ],
    "rm_rewards": [
        {"prompt_id": "p1", "candidate_id": "c0", "reward": 3.5, "reward_model_version": 2},
    ],
    "judge_items": [
        {"prompt_id": "p1", "candidate_id": "c0", "prompt": "How long is the Vell?",
         "candidate": "The Vell is 340 km long.",
         "target": {"facts": ["The Vell is 340 km long."], "voice": "technical, concise",
                    "constraints": ["no speculation"], "behavior": "answer"}, "group_id": None},
    ],
}
EXAMPLE_FILES = {"dialogs": "dialogs", "summaries": "summaries", "labyrinth": "labyrinth", "scores": "scores",
                 "pairs": "pairs", "prompts": "behavior_prompts"}


def _records(kind: str) -> list[dict]:
    if kind in EXTRA:
        return EXTRA[kind]
    return [json.loads(line) for line in (EXAMPLES / f"{EXAMPLE_FILES[kind]}.jsonl").read_text().splitlines()]


def test_every_kind_has_samples() -> None:
    assert set(SHARDS) == set(EXTRA) | set(EXAMPLE_FILES)


@pytest.mark.parametrize("kind", sorted(SHARDS))
def test_round_trip_jsonl_arrow_parquet(kind: str, tmp_path: Path) -> None:
    table = to_table(_records(kind), kind)
    assert table.schema.equals(SHARDS[kind].schema)
    jsonl = write_shard(table, tmp_path / f"x.{kind}.jsonl", kind)
    parquet = write_shard(read_shard(jsonl, kind).table, tmp_path / f"x.{kind}.parquet", kind)
    back = read_shard(parquet, kind).table
    assert back.equals(table)
    assert table_to_records(back) == table_to_records(table)


def test_seed_example_is_accepted_as_written(tmp_path: Path) -> None:
    path = tmp_path / "dialogs.jsonl"
    path.write_text('{"dialog_id":"abc123","turns":[{"role":"human","text":"…"}]}\n')
    table = read_shard(path, "dialogs").table
    assert table.to_pylist() == [{"dialog_id": "abc123", "turns": [{"role": "human", "text": "…"}]}]


def test_a_single_string_for_a_list_of_strings_becomes_one_item() -> None:
    rec = {"dialog_id": "d", "facts": "A fact.", "logic": "A, so B.",
           "persona": {"voice": "technical, concise", "constraints": "no speculation"}}
    row = to_table([rec], "summaries").to_pylist()[0]
    assert row["facts"] == ["A fact."] and row["logic"] == ["A, so B."]
    assert row["persona"]["constraints"] == ["no speculation"]


def test_float32_is_written_shortest_and_reloads_identically(tmp_path: Path) -> None:
    path = write_shard([dict(EXTRA["candidates"][0], logprobs=[-0.1, -0.3, -0.7])],
                       tmp_path / "candidates.jsonl", "candidates")
    assert '"logprobs": [-0.1, -0.3, -0.7]' in path.read_text()


BAD_DIALOGS = "\n".join([
    '{"dialog_id":"a","turns":[{"role":"human","text":"hi"}]}',
    '{"dialog_id":"b","turns":[{"role":"bot","text":"hi"}]}',       # 2: bad role
    "not json at all",                                               # 3
    "",                                                              # 4: blank, not a record
    '{"dialog_id":"a","turns":[{"role":"human","text":"again"}]}',   # 5: duplicate id
    '{"dialog_id":"c","turns":[],"speaker":"x"}',                    # 6: empty turns, unknown field
    '{"dialog_id":7,"turns":[{"role":"human"}]}',                    # 7: wrong type, missing text
]) + "\n"


def test_bad_records_are_all_listed_as_file_line(tmp_path: Path) -> None:
    path = tmp_path / "dialogs.jsonl"
    path.write_text(BAD_DIALOGS)
    with pytest.raises(ShardError) as err:
        read_shard(path, "dialogs")
    text = str(err.value)
    assert f"{path}: 5 bad dialogs record(s)" in text
    assert f"{path}:2: turns[0].role: 'bot' is not one of human | assistant" in text
    assert f"{path}:3: not valid JSON" in text
    assert f"{path}:5: duplicate dialog_id 'a' (first at {path}:1)" in text
    assert f"{path}:6: speaker: unknown field" in text
    assert f"{path}:7: dialog_id: expected a string, got int 7" in text
    assert f"{path}:7: turns[0].text: missing or null, but required" in text
    assert ":4:" not in text


def test_quarantine_writes_and_counts_every_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "dialogs.jsonl"
    path.write_text(BAD_DIALOGS)
    result = read_shard(path, "dialogs", quarantine=tmp_path / "q" / "bad.jsonl")
    assert (result.n_bad, result.table.num_rows) == (5, 1)
    quarantined = [json.loads(line) for line in result.quarantine.read_text().splitlines()]
    assert [q["source"] for q in quarantined] == [f"{path}:{n}" for n in (2, 3, 5, 6, 7)]
    assert quarantined[1]["record"] == "not json at all"


def test_parquet_rows_are_named_by_row_number(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    loose = pa.table({"prompt_id": ["a", "b"], "prompt": ["x", "y"], "label": ["safe", "harmless"]})
    pq.write_table(loose, tmp_path / "prompts.parquet")
    good, bad = scan_shard(tmp_path / "prompts.parquet", "prompts")
    assert good.num_rows == 1
    assert bad[0].lines() == [f"{tmp_path / 'prompts.parquet'}:row 2: label: 'harmless' is not one of safe | unsafe"]


def test_row_checks_catch_cross_column_problems() -> None:
    bad = dict(EXTRA["experience"][0], old_logprobs=[-0.5])
    with pytest.raises(ShardError, match="per-token columns differ in length: token_ids=2, old_logprobs=1"):
        to_table([bad], "experience")
    with pytest.raises(ShardError, match="chosen and rejected are the same text"):
        to_table([{"prompt": "p", "chosen": "a", "rejected": "a", "source": "ranking"}], "pairs")


def test_unknown_format_and_kind_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shard format '.csv'"):
        write_shard([], tmp_path / "x.csv", "pairs")
    with pytest.raises(ValueError, match="unknown shard kind 'dialog'; valid kinds: dialogs"):
        to_table([], "dialog")


def test_typed_parquet_takes_the_vectorised_path_and_still_names_rows(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from ouro_ray.data import SHARDS

    rows = [dict(EXTRA["candidates"][0], candidate_id=f"c{i}") for i in range(4)]
    rows[1]["logprobs"] = [-0.5, 0.25, -1.0]          # positive log-probability
    rows[3]["candidate_id"] = "c0"                     # duplicate key of row 1
    path = tmp_path / "candidates.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SHARDS["candidates"].schema), path)
    good, bad = scan_shard(path, "candidates")
    assert good.column("candidate_id").to_pylist() == ["c0", "c2"]
    assert [b.lines() for b in bad] == [
        [f"{path}:row 2: logprobs[1] = 0.25: a log-probability must be <= 0"],
        [f"{path}:row 4: duplicate prompt_id/candidate_id ('p1', 'c0') (first at {path}:row 1)"],
    ]


def test_loosely_typed_parquet_is_checked_row_by_row(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    loose = pa.table({"prompt_id": ["p"], "candidate_id": ["c"], "text": ["t"], "prompt_token_ids": [[1]], "token_ids": [[1, 2]],
                      "logprobs": [[-0.5, -0.5]], "policy_version": [1]})  # int64 ids, float64 logprobs
    pq.write_table(loose, tmp_path / "candidates.parquet")
    table = read_shard(tmp_path / "candidates.parquet", "candidates").table
    assert table.schema.equals(SHARDS["candidates"].schema)
    assert table.column("token_ids").to_pylist() == [[1, 2]]
