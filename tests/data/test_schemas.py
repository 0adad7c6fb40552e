"""The schema module: one definition per column; batches validated where they enter an actor."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ouro_ray.data import SHARDS, BatchSchemaError, to_table, validate_batch
from ouro_ray.data.schemas import CANDIDATES
from ouro_ray.data.validate import bad_row_mask, record_problems


def test_every_column_has_type_shape_and_meaning() -> None:
    for spec in SHARDS.values():
        assert spec.doc
        for c in spec.columns:
            assert isinstance(c.type, pa.DataType)
            assert c.shape.startswith("(B")
            assert c.meaning
        for key in spec.key:
            assert key in spec.names


def test_per_token_columns_are_ragged_lists() -> None:
    assert SHARDS["experience"].column("old_logprobs").type == pa.list_(pa.float32())
    assert SHARDS["candidates"].column("token_ids").type == pa.list_(pa.int32())


def _candidates() -> pa.Table:
    return to_table([{"prompt_id": "p", "candidate_id": "c", "text": "t", "prompt_token_ids": [1, 4], "token_ids": [1],
                      "logprobs": [-0.5], "policy_version": 0}], "candidates")


def test_a_valid_batch_passes() -> None:
    validate_batch(_candidates(), "candidates", "rollout/0")
    validate_batch(_candidates().to_batches()[0], "candidates", "rollout/0")


def test_batch_errors_name_shard_column_and_producer() -> None:
    wrong_type = _candidates().set_column(4, "token_ids", pa.array([[1]], pa.list_(pa.int64())))
    with pytest.raises(BatchSchemaError, match=r"candidates batch from rollout/1: column 'token_ids' has type list<item: int64>"):
        validate_batch(wrong_type, "candidates", "rollout/1")
    with pytest.raises(BatchSchemaError, match="column 'policy_version' is missing"):
        validate_batch(_candidates().drop_columns(["policy_version"]), "candidates", "rollout/1")
    with pytest.raises(BatchSchemaError, match=r"column 'txt' is not in the candidates schema \(did you mean 'text'\?\)"):
        validate_batch(_candidates().append_column("txt", pa.array(["x"])), "candidates", "rollout/1")


def test_batch_enumerations_are_checked_inside_nested_columns() -> None:
    dialogs = pa.Table.from_pylist([{"dialog_id": "d", "turns": [{"role": "human", "text": "a"},
                                                                  {"role": "robot", "text": "b"}]}],
                                   schema=SHARDS["dialogs"].schema)
    with pytest.raises(BatchSchemaError,
                       match=r"dialogs batch from judge/2: row 0: turns\[1\].role: 'robot' is not one of human \| assistant"):
        validate_batch(dialogs, "dialogs", "judge/2")
    scores = pa.Table.from_pylist([{"prompt_id": "p", "candidate_id": "c", "scores": {}, "reward": 0.0,
                                    "rater": "robot"}], schema=SHARDS["scores"].schema)
    with pytest.raises(BatchSchemaError, match=r"row 0: rater: 'robot' is not one of human \| ai \| rule \| rm"):
        validate_batch(scores, "scores", "judge/0")


def test_record_problems_reject_non_finite_and_out_of_range_values() -> None:
    rec = {"prompt_id": "p", "candidate_id": "c", "text": "t", "token_ids": [2**40], "logprobs": [float("nan")],
           "policy_version": 0}
    problems = record_problems(CANDIDATES, rec)
    assert "token_ids[0]: 1099511627776 does not fit in int32" in problems
    assert "logprobs[0]: nan is not a finite number" in problems


def test_batch_row_rules_are_enforced() -> None:
    table = _candidates()
    mismatched = table.set_column(5, "logprobs", pa.array([[-0.5, -0.25]], pa.list_(pa.float32())))
    with pytest.raises(BatchSchemaError, match="row 0: per-token columns differ in length: token_ids=1, logprobs=2"):
        validate_batch(mismatched, "candidates", "rollout/0")


# Rows that break each kind of rule, mixed with good ones; the vectorised mask must flag exactly the
# rows whose JSON form has problems.
MIXED_EXPERIENCE = [
    {"prompt_id": "p", "candidate_id": "ok", "prompt_token_ids": [1], "token_ids": [2, 3], "old_logprobs": [-1.0, -2.0],
     "ref_logprobs": [-1.0, -2.0], "values": None, "reward": 1.0, "policy_version": 0},
    {"prompt_id": "p", "candidate_id": "len", "prompt_token_ids": [1], "token_ids": [2, 3], "old_logprobs": [-1.0],
     "ref_logprobs": [-1.0, -2.0], "values": [0.0, 0.0], "reward": 1.0, "policy_version": 0},
    {"prompt_id": "p", "candidate_id": "pos", "prompt_token_ids": [1], "token_ids": [2], "old_logprobs": [-1.0],
     "ref_logprobs": [0.5], "values": None, "reward": 1.0, "policy_version": 0},
    {"prompt_id": "p", "candidate_id": "empty", "prompt_token_ids": [1], "token_ids": [], "old_logprobs": [],
     "ref_logprobs": [], "values": None, "reward": 1.0, "policy_version": 0},
    {"prompt_id": "p", "candidate_id": "nan", "prompt_token_ids": [1], "token_ids": [2], "old_logprobs": [-1.0],
     "ref_logprobs": [-1.0], "values": None, "reward": float("nan"), "policy_version": 0},
    {"prompt_id": "p", "candidate_id": "ok2", "prompt_token_ids": [], "token_ids": [9], "old_logprobs": [-0.5],
     "ref_logprobs": [-0.5], "values": [1.0], "reward": -1.0, "policy_version": 2},
]


def test_vectorised_and_row_checks_agree() -> None:
    spec = SHARDS["experience"]
    table = pa.Table.from_pylist(MIXED_EXPERIENCE, schema=spec.schema)
    expected = [bool(record_problems(spec, r)) for r in MIXED_EXPERIENCE]
    assert expected == [False, True, True, True, True, False]
    assert bad_row_mask(spec, table).tolist() == expected
    # also on a slice whose buffers start mid-array (batches are often slices)
    assert bad_row_mask(spec, table.slice(2, 4)).tolist() == expected[2:6]


def test_vectorised_checks_reach_nested_enums_and_maps() -> None:
    scores = [{"prompt_id": "p", "candidate_id": "a", "scores": {"helpful": 1.0}, "reward": 0.0, "rater": "ai"},
              {"prompt_id": "p", "candidate_id": "b", "scores": {"helpful": float("inf")}, "reward": 0.0, "rater": "ai"},
              {"prompt_id": "p", "candidate_id": "c", "scores": {}, "reward": 0.0, "rater": "oracle"}]
    table = pa.Table.from_pylist(scores, schema=SHARDS["scores"].schema)
    assert bad_row_mask(SHARDS["scores"], table).tolist() == [False, True, True]
    assert bad_row_mask(SHARDS["scores"], table.slice(1)).tolist() == [True, True]
    labyrinth = [{"dialog_id": "d", "prompt_id": str(i), "kind": "rephrase", "prompt": "q",
                  "target": {"behavior": b}} for i, b in enumerate(["answer", "comply", "refuse"])]
    table = pa.Table.from_pylist(labyrinth, schema=SHARDS["labyrinth"].schema)
    assert bad_row_mask(SHARDS["labyrinth"], table).tolist() == [False, True, False]
