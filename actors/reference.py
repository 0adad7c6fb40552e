"""The reference role: a frozen copy of the initial policy that scores candidates token by token.

PPO's KL penalty and DPO's log-ratios compare the policy against these numbers. The reference
never takes new weights. It reads the token columns of a ``candidates`` batch (prompt and candidate
ids) and returns ``ref_logprobs`` aligned with ``token_ids``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import torch

from actors.group import ActorGroup
from actors.rollout import producer_of, stamp
from ouro_ray.config.roles import ReferenceConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.tensors import pad_lists, unpad_to_lists
from ouro_ray.data.validate import validate_batch
from ouro_ray.models.device import pick_device
from ouro_ray.models.load import load_causal_lm
from ouro_ray.models.logprobs import response_logprobs_batched

REF_SCHEMA = SHARDS["reference_logprobs"].schema
"""What the reference returns (the ``reference_logprobs`` shard in :mod:`ouro_ray.data.schemas`)."""


def token_tensors(candidates: pa.Table, pad_id: int) -> tuple[torch.Tensor, ...]:
    """(prompt_ids, prompt_mask) (B, P) left-padded and (token_ids, token_mask) (B, T) right-padded."""
    prompt_ids, prompt_mask = pad_lists(candidates.column("prompt_token_ids"), pad_value=pad_id, side="left")
    token_ids, token_mask = pad_lists(candidates.column("token_ids"), pad_value=pad_id, side="right")
    return prompt_ids, prompt_mask, token_ids, token_mask


class ReferenceWorker:
    """Per-token logprobs of candidates under the frozen initial policy."""

    def __init__(self, model_dir: str, cfg: ReferenceConfig, *, worker_index: int = 0, logprob_batch_size: int = 16):
        self.name = f"reference/{worker_index}"
        device = pick_device()
        self.model, self.tokenizer = load_causal_lm(model_dir, dtype=cfg.dtype, device=device)
        self.device, self.batch_size = device, logprob_batch_size

    def logprobs(self, candidates: pa.Table) -> pa.Table:
        """``ref_logprobs`` for each row of a ``token_sequences`` batch, keyed by (prompt_id, candidate_id)."""
        validate_batch(candidates, "token_sequences", producer_of(candidates))
        p_ids, p_mask, t_ids, t_mask = token_tensors(candidates, self.tokenizer.pad_token_id)
        logp = response_logprobs_batched(self.model, p_ids.to(self.device), p_mask.to(self.device),
                                         t_ids.to(self.device), t_mask.to(self.device), self.batch_size).cpu()
        table = pa.table({
            "prompt_id": candidates.column("prompt_id"),
            "candidate_id": candidates.column("candidate_id"),
            "ref_logprobs": unpad_to_lists(logp, t_mask, pa.float32()),
        }, schema=REF_SCHEMA)
        return stamp(table, f"ouro/{self.name}")


class ReferenceGroup:
    """The reference actors: candidates in, ``ref_logprobs`` out, in row order."""

    def __init__(self, model_dir: str, cfg: ReferenceConfig, *, prefix: str = "ouro", namespace: str | None = None):
        self.group = ActorGroup("reference", ReferenceWorker, cfg.workers, str(model_dir), cfg,
                                prefix=prefix, namespace=namespace)

    def logprobs(self, candidates: pa.Table) -> pa.Table:
        """``ref_logprobs`` for a ``candidates`` or ``token_sequences`` table (only the token columns travel)."""
        sequences = candidates.select(list(SHARDS["token_sequences"].names))  # no copy: the same buffers
        return self.group.map_rows("logprobs", sequences,
                                   merge=lambda parts: pa.concat_tables(parts) if parts else REF_SCHEMA.empty_table())

    def info(self) -> list[Any]:
        return self.group.names

    def close(self) -> None:
        self.group.close()
