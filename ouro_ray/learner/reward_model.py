"""Training the reward model: a scalar head on a causal LM, pooled at each sequence's last real token.

The trainable module wraps the same ``*ForSequenceClassification`` model the reward role serves
(:func:`ouro_ray.models.reward.load_reward_model`), so the weights the learner publishes load into the
reward workers as they are, and a checkpoint's ``policy/`` directory reloads with
``AutoModelForSequenceClassification``.
"""

from __future__ import annotations

import pyarrow as pa
import torch
from torch import nn


class RewardModule(nn.Module):
    """``forward(ids, mask, last) -> (B,)`` rewards, with gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.policy = model  # named like PolicyWithValue's, so the learner's publish/save code serves both
        self.value_head = None

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        hidden = self.policy.base_model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, H)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        return self.policy.score(pooled)[:, 0].float()  # (B,)


def build_reward_module(model_dir: str, seed: int, device: str = "cpu") -> RewardModule:
    """The reward model (a new head, seeded, when the directory has none), trainable."""
    from ouro_ray.models.reward import load_reward_model

    model, _, _ = load_reward_model(model_dir, device=device, seed=seed)
    model.train().requires_grad_(True)
    return RewardModule(model)


def pair_tensors(batch: pa.Table, pad_id: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``{'chosen': (ids, mask, last), 'rejected': …}``: prompt + candidate, right-padded, per side."""
    from ouro_ray.models.reward import sequence_tensors

    prompts = batch.column("prompt_token_ids")
    return {side: sequence_tensors(prompts, batch.column(f"{side}_token_ids"), pad_id) for side in ("chosen", "rejected")}
