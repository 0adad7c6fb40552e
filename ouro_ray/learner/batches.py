"""Arrow batches the learner consumes, and how they become tensors.

DPO: ``pairs`` (text) are tokenized once in the driver into two ``token_sequences`` tables (chosen,
rejected) that the reference role scores; their summed logprobs are joined back as columns of a
``preference_batch``. The learner never holds a reference model.

PPO: an ``experience`` table (prompt and candidate tokens, old and reference logprobs, reward), read
into a :class:`PPOBatch` of tensors.

Notation: ``B`` rows, ``P`` prompt tokens (left-padded), ``T`` candidate tokens (right-padded).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

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


@dataclass(frozen=True)
class TokenBatch:
    """Prompts and candidates as padded tensors, the model's input."""

    prompt: torch.Tensor
    """(B, P) int64 prompt tokens, left-padded."""
    prompt_mask: torch.Tensor
    """(B, P) bool, true on prompt tokens."""
    ids: torch.Tensor
    """(B, T) int64 candidate tokens, right-padded."""
    mask: torch.Tensor
    """(B, T) bool, true on candidate tokens (the tokens a loss counts)."""

    @classmethod
    def from_table(cls, table: pa.Table, pad_id: int) -> "TokenBatch":
        """From a table with ``prompt_token_ids`` and ``token_ids`` (``experience``, ``token_sequences``)."""
        prompt, prompt_mask = tokens(table, "prompt_token_ids", pad_id, side="left")
        ids, mask = tokens(table, "token_ids", pad_id)
        return cls(prompt, prompt_mask, ids, mask)

    def rows(self, index: torch.Tensor) -> "TokenBatch":
        return TokenBatch(*(getattr(self, f.name)[index] for f in fields(self)))


@dataclass(frozen=True)
class PPOBatch:
    """An ``experience`` batch as PPO reads it; :meth:`with_advantages` adds what the critic and GAE give."""

    tokens: TokenBatch
    old_logprobs: torch.Tensor
    """(B, T) float32 logprobs of the candidate tokens under the policy that sampled them (0 on padding)."""
    ref_logprobs: torch.Tensor
    """(B, T) float32 logprobs under the frozen reference (0 on padding)."""
    reward: torch.Tensor
    """(B,) float32 one combined reward per candidate (stage 5)."""
    old_values: torch.Tensor | None = None
    """(B, T) critic values before the update, 0 on padding."""
    kl: torch.Tensor | None = None
    """(B, T) per-token KL estimate to the reference, 0 on padding."""
    advantages: torch.Tensor | None = None
    """(B, T) GAE advantages (whitened when configured), 0 on padding."""
    returns: torch.Tensor | None = None
    """(B, T) the critic's regression targets, 0 on padding."""

    @classmethod
    def from_table(cls, table: pa.Table, pad_id: int) -> "PPOBatch":
        return cls(TokenBatch.from_table(table, pad_id), floats(table, "old_logprobs"), floats(table, "ref_logprobs"),
                   torch.as_tensor(table.column("reward").to_numpy(), dtype=torch.float32))

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) float32 candidate-token mask, as the losses take it."""
        return self.tokens.mask.float()

    def masked(self, valid: torch.Tensor) -> "PPOBatch":
        """The batch with rows where ``valid`` (B,) is false carrying no token (weight-0 repeats)."""
        return replace(self, tokens=replace(self.tokens, mask=self.tokens.mask & valid[:, None]))

    def with_advantages(self, old_values: torch.Tensor, kl: torch.Tensor, advantages: torch.Tensor,
                        returns: torch.Tensor) -> "PPOBatch":
        return replace(self, old_values=old_values, kl=kl, advantages=advantages, returns=returns)

    def rows(self, index: torch.Tensor) -> "PPOBatch":
        """Rows ``index`` of every tensor (a micro-batch)."""
        return PPOBatch(self.tokens.rows(index), *(None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                                                   for f in fields(self) if f.name != "tokens"))
