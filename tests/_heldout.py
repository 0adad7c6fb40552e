"""Held-out DPO metrics of a policy: margin and accuracy of chosen over rejected, relative to the reference."""

from __future__ import annotations

import pyarrow as pa
import torch

from ouro_ray.algos import dpo_loss, token_logprobs
from ouro_ray.learner.batches import tokens
from ouro_ray.models.logprobs import response_forward


@torch.no_grad()
def heldout_metrics(policy: torch.nn.Module, batch: pa.Table, pad_id: int, beta: float = 0.1) -> dict[str, float]:
    prompt, prompt_mask = tokens(batch, "prompt_token_ids", pad_id, side="left")

    def logps(column: str) -> torch.Tensor:
        ids, mask = tokens(batch, column, pad_id)
        logits, _ = response_forward(policy, prompt, prompt_mask, ids, mask)
        return (token_logprobs(logits, ids) * mask).sum(-1)

    ref_c = torch.as_tensor(batch.column("ref_chosen_logps").to_numpy())
    ref_r = torch.as_tensor(batch.column("ref_rejected_logps").to_numpy())
    _, m = dpo_loss(logps("chosen_token_ids"), logps("rejected_token_ids"), ref_c, ref_r, beta)
    return {"margin": float(m["reward_margin"]), "accuracy": float(m["accuracy"])}
