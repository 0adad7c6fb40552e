"""The schema module: one definition per column; batches validated where they enter an actor."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ouro_ray.data import SHARDS, BatchSchemaError, to_table, validate_batch
from ouro_ray.data.schemas import CANDIDATES, record_problems


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
    return to_table([{"prompt_id": "p", "candidate_id": "c", "text": "t", "token_ids": [1],
                      "logprobs": [-0.5], "policy_version": 0}], "candidates")


def test_a_valid_batch_passes() -> None:
    validate_batch(_candidates(), "candidates", "rollout/0")
    validate_batch(_candidates().to_batches()[0], "candidates", "rollout/0")


def test_batch_errors_name_shard_column_and_producer() -> None:
    wrong_type = _candidates().set_column(3, "token_ids", pa.array([[1]], pa.list_(pa.int64())))
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
    with pytest.raises(BatchSchemaError, match=r"dialogs batch from judge/2: column 'turns.role' has 'robot'"):
        validate_batch(dialogs, "dialogs", "judge/2")
    scores = pa.Table.from_pylist([{"prompt_id": "p", "candidate_id": "c", "scores": {}, "reward": 0.0,
                                    "rater": "robot"}], schema=SHARDS["scores"].schema)
    with pytest.raises(BatchSchemaError, match="column 'rater' has 'robot', allowed: human | ai | rule | rm"):
        validate_batch(scores, "scores", "judge/0")


def test_record_problems_reject_non_finite_and_out_of_range_values() -> None:
    rec = {"prompt_id": "p", "candidate_id": "c", "text": "t", "token_ids": [2**40], "logprobs": [float("nan")],
           "policy_version": 0}
    problems = record_problems(CANDIDATES, rec)
    assert "token_ids[0]: 1099511627776 does not fit in int32" in problems
    assert "logprobs[0]: nan is not a finite number" in problems
