"""Judge items as Arrow: candidates joined with their prompts, and judge verdicts as a ``scores`` table.

The join runs once in the driver (vectorised, by ``prompt_id``); the ``judge_items`` table then goes
through the object store to the judge workers, which turn rows into :class:`JudgeItem` objects only
at the point where a judge reads text.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.data.schemas import SHARDS
from ouro_ray.judges.protocol import JudgeItem, JudgeScore, Target


def _targets_from_labels(labels: pa.ChunkedArray) -> pa.Array:
    """A ``prompts`` shard's safe/unsafe labels as targets: answer or refuse, nothing else to keep."""
    behavior = pc.if_else(pc.equal(labels, "unsafe"), "refuse", "answer")
    n = len(labels)
    empty = pa.array([[]] * n, pa.list_(pa.string()))
    target_type = SHARDS["judge_items"].column("target").type
    return pa.StructArray.from_arrays(
        [empty, pa.nulls(n, pa.string()), empty, behavior.combine_chunks()], fields=list(target_type))


def judge_items(candidates: pa.Table, prompts: pa.Table) -> pa.Table:
    """The ``judge_items`` table: each candidate row with its prompt's text, target and group.

    ``prompts`` is a ``labyrinth`` table (targets as given) or a ``prompts`` table (targets from the
    safe/unsafe label). A candidate whose prompt is missing is an error that names it.
    """
    index = pc.index_in(candidates.column("prompt_id"), value_set=prompts.column("prompt_id"))
    if index.null_count:
        missing = pc.filter(candidates.column("prompt_id"), pc.is_null(index)).unique().to_pylist()
        raise KeyError(f"candidates for prompt_id {missing[:5]} have no row in the prompts table; "
                       "fix: pass the prompts shard the candidates were generated from")
    rows = prompts.take(index)
    if "target" in prompts.column_names:
        target = rows.column("target")
        group = rows.column("group_id")
    else:
        target = _targets_from_labels(rows.column("label"))
        group = pa.nulls(rows.num_rows, pa.string())
    return pa.table({
        "prompt_id": candidates.column("prompt_id"),
        "candidate_id": candidates.column("candidate_id"),
        "prompt": rows.column("prompt"),
        "candidate": candidates.column("text"),
        "target": target,
        "group_id": group,
    }, schema=SHARDS["judge_items"].schema)


def items_from_table(table: pa.Table) -> list[JudgeItem]:
    """One :class:`JudgeItem` per row (the text-reading judges need Python strings)."""
    out = []
    for rec in table.to_pylist():
        t = rec["target"]
        target = Target(tuple(t["facts"] or ()), t["voice"] or "", tuple(t["constraints"] or ()), t["behavior"])
        out.append(JudgeItem(rec["prompt_id"], rec["candidate_id"], rec["prompt"], rec["candidate"], target,
                             rec["group_id"]))
    return out


def scores_table(scores: Sequence[JudgeScore]) -> pa.Table:
    """Verdicts as a ``scores`` table (one row per candidate and teacher)."""
    return pa.table({
        "prompt_id": [s.prompt_id for s in scores],
        "candidate_id": [s.candidate_id for s in scores],
        "scores": pa.array([list(s.scores.items()) for s in scores], SHARDS["scores"].column("scores").type),
        "reward": pa.array(np.array([s.reward for s in scores], np.float32)),
        "rater": [s.rater for s in scores],
        "teacher": [s.teacher for s in scores],
        "notes": [s.notes for s in scores],
    }, schema=SHARDS["scores"].schema)
