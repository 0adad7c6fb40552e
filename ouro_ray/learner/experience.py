"""Stage 6 glue for PPO: candidates, reference logprobs and rewards joined into one ``experience`` batch.

The three inputs come from three roles (rollout, reference, judges) and need not share a row order,
so rows are matched by the ``candidates`` key ``(prompt_id, candidate_id)``, vectorised: both key
columns are joined into one string key and looked up with ``pc.index_in``. A candidate without a
reference row or a reward is an error that names it: silently dropping it would bias the batch
towards candidates that were easy to score.

``values`` stay null: the learner's value head computes them from the current critic when it
updates, so the rollout need not hold a critic.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.validate import validate_batch

KEY = ("prompt_id", "candidate_id")
_SEP = "\x1f"  # ASCII unit separator: never inside an id, so ("a", "b|c") and ("a|b", "c") stay apart
PRODUCER = "ouro_ray.learner.experience"



def candidate_keys(table: pa.Table) -> pa.ChunkedArray:
    """(B,) one string per row joining ``prompt_id`` and ``candidate_id``, the join key of the candidate shards."""
    return pc.binary_join_element_wise(table.column("prompt_id"), table.column("candidate_id"), _SEP)


def _describe(keys: pa.Array | pa.ChunkedArray, limit: int = 5) -> str:
    """The first ``limit`` joined keys as readable tuples, e.g. ``('p0', 'c1')``."""
    shown = [repr(tuple(k.split(_SEP))) for k in keys.to_pylist()[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more


def _check_unique(keys: pa.ChunkedArray, what: str, fix: str) -> None:
    """Raise when a key occurs twice: ``index_in`` would silently take the first of them."""
    counts = pc.value_counts(keys)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise ValueError(f"{what} has more than one row for {_describe(repeated)}; fix: {fix}")


def row_index(candidates: pa.Table, table: pa.Table, what: str, fix: str) -> pa.Array:
    """(B,) the row of ``table`` holding each candidate's key; an error names the candidates it lacks."""
    keys = candidate_keys(table)
    _check_unique(keys, what, fix)
    wanted = candidate_keys(candidates)
    index = pc.index_in(wanted, value_set=keys.combine_chunks())
    if index.null_count:
        missing = pc.filter(wanted, pc.is_null(index))
        raise KeyError(f"{len(missing)} candidates have no row in {what}: {_describe(missing)}; fix: {fix}")
    return index.combine_chunks() if isinstance(index, pa.ChunkedArray) else index


def _aligned_rewards(candidates: pa.Table, rewards: pa.Table | np.ndarray) -> pa.Array:
    """(B,) float32 rewards in candidate order, from a keyed table or an already aligned array."""
    if isinstance(rewards, pa.Table):
        index = row_index(candidates, rewards, "the rewards table",
                          "score every candidate (combine several teachers' rows into one reward with "
                          "ouro_ray.judges.scoring.combine)")
        values = pc.take(rewards.column("reward"), index)
        return pc.cast(values, pa.float32()).combine_chunks()
    array = np.asarray(rewards, dtype=np.float32)
    if array.shape != (candidates.num_rows,):
        raise ValueError(f"rewards has shape {array.shape} but there are {candidates.num_rows} candidates; fix: "
                         "pass one reward per candidate row, in candidate order, or a table keyed by "
                         "prompt_id, candidate_id")
    return pa.array(array)


def build_experience(candidates: pa.Table, ref: pa.Table, rewards: pa.Table | np.ndarray) -> pa.Table:
    """The validated ``experience`` batch: one row per candidate, in candidate order.

    ``ref`` is the reference role's table (``prompt_id``, ``candidate_id``, ``ref_logprobs``);
    ``rewards`` is a table with ``prompt_id``, ``candidate_id``, ``reward`` (a ``scores`` table with
    one teacher, or :func:`~ouro_ray.judges.scoring.combine`'s output) or an array aligned with ``candidates``.
    The candidates' own ``logprobs`` become ``old_logprobs``: the policy that sampled them.
    """
    validate_batch(candidates, "candidates", f"the caller of {PRODUCER}.build_experience")
    ref_rows = pc.take(ref.column("ref_logprobs"), row_index(candidates, ref, "the reference logprobs",
                                                             "score every candidate with the reference role"))
    table = pa.table({
        "prompt_id": candidates.column("prompt_id"),
        "candidate_id": candidates.column("candidate_id"),
        "prompt_token_ids": candidates.column("prompt_token_ids"),
        "token_ids": candidates.column("token_ids"),
        "old_logprobs": candidates.column("logprobs"),
        "ref_logprobs": ref_rows,
        "values": pa.nulls(candidates.num_rows, SHARDS["experience"].column("values").type),
        "reward": _aligned_rewards(candidates, rewards),
        "policy_version": candidates.column("policy_version"),
    }, schema=SHARDS["experience"].schema)
    validate_batch(table, "experience", f"{PRODUCER}.build_experience")  # e.g. ref and candidate lengths differ
    return table


# ---------------------------------------------------------------- several teachers, one reward


def _teacher_names(scores: pa.Table) -> pa.ChunkedArray:
    """(B,) the teacher of each row, or its rater kind where the teacher is null (e.g. a human)."""
    return pc.coalesce(scores.column("teacher"), scores.column("rater"))


def _teacher_weights(teachers: pa.ChunkedArray, weights: Mapping[str, float] | None) -> pa.Array:
    """(B,) float64 weight of each row's teacher; every teacher present must have a weight >= 0."""
    if weights is None:
        return pa.array(np.ones(len(teachers)))
    names = pc.unique(teachers).to_pylist()
    unknown = [n for n in names if n not in weights]
    if unknown:
        raise ValueError(f"teachers {unknown} have no weight; weights name {sorted(weights)}; fix: add a weight "
                         "for each teacher in the scores (0 ignores one)")
    negative = {n: w for n, w in weights.items() if not (w >= 0 and np.isfinite(w))}
    if negative:
        raise ValueError(f"teacher weights {negative} must be finite and >= 0; fix: use 0 to ignore a teacher")
    keys, values = list(weights), pa.array([float(weights[k]) for k in weights], pa.float64())
    return pc.take(values, pc.index_in(teachers, value_set=pa.array(keys, pa.string()))).combine_chunks()


