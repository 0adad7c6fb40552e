"""Arrow batches the learner consumes, and how they become tensors.

DPO: ``pairs`` (text) are tokenized once in the driver into two ``token_sequences`` tables (chosen,
rejected) that the reference role scores; their summed logprobs are joined back as columns of a
``preference_batch``. The learner never holds a reference model.

PPO: an ``experience`` table (prompt and candidate tokens, old and reference logprobs, reward).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.tensors import arrays_to_lists, list_lengths, pad_lists
from ouro_ray.models.load import encode_prompts


def _token_lists(rows: list[list[int]]) -> pa.ListArray:
    return arrays_to_lists([np.asarray(r, np.int32) for r in rows], pa.int32())


def tokenize_pairs(pairs: pa.Table, tokenizer) -> tuple[pa.Table, pa.Table]:
    """``(chosen, rejected)`` as ``token_sequences`` tables: the chat-templated prompt, then text + EOS."""
    prompts = encode_prompts(tokenizer, pairs.column("prompt").to_pylist())
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = pairs.column("prompt_id").to_pylist() if "prompt_id" in pairs.column_names else [None] * pairs.num_rows
    keys = [pid if pid is not None else f"pair-{i}" for i, pid in enumerate(ids)]
    out = []
    for side in ("chosen", "rejected"):
        texts = pairs.column(side).to_pylist()
        tokens = [list(t) + eos for t in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        out.append(pa.table({
            "prompt_id": pa.array(keys, pa.string()),
            "candidate_id": pa.array([f"{side}-{i}" for i in range(len(texts))], pa.string()),
            "prompt_token_ids": _token_lists(prompts),
            "token_ids": _token_lists(tokens),
        }, schema=SHARDS["token_sequences"].schema))
    return out[0], out[1]


def sequence_sums(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(B,) float32 sum of each row of a ``list<float>`` column (a cumulative sum, no row loop)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = np.concatenate([[0], np.cumsum(list_lengths(arr))])  # (B+1,)
    running = np.concatenate([[0.0], np.cumsum(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)])
    return (running[offsets[1:]] - running[offsets[:-1]]).astype(np.float32)


def preference_batch(chosen: pa.Table, rejected: pa.Table, ref_chosen: pa.Table | None = None,
                     ref_rejected: pa.Table | None = None, prompt_ids: pa.Array | None = None) -> pa.Table:
    """The ``preference_batch``: tokens of both sides plus the reference's summed logprobs.

    DPO needs the reference tables; reward-model training does not (the columns are then null).
    """
    n = chosen.num_rows

    def sums(ref: pa.Table | None) -> pa.Array:
        return pa.nulls(n, pa.float32()) if ref is None else pa.array(sequence_sums(ref.column("ref_logprobs")))

    return pa.table({
        "prompt_id": prompt_ids if prompt_ids is not None else pa.nulls(n, pa.string()),
        "prompt_token_ids": chosen.column("prompt_token_ids"),
        "chosen_token_ids": chosen.column("token_ids"),
        "rejected_token_ids": rejected.column("token_ids"),
        "ref_chosen_logps": sums(ref_chosen),
        "ref_rejected_logps": sums(ref_rejected),
    }, schema=SHARDS["preference_batch"].schema)


def tokens(table: pa.Table, column: str, pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """A token column as ``(ids, mask)``, (B, T) each."""
    return pad_lists(table.column(column), pad_value=pad_id, side=side)


def floats(table: pa.Table, column: str) -> torch.Tensor:
    """A per-token float column as a right-padded (B, T) float32 tensor (0 where padded)."""
    return pad_lists(table.column(column), pad_value=0.0, side="right", dtype=torch.float32)[0]
