"""Losses and advantage estimators by name, for configs (``algo.loss: dpo_sigmoid``).

Losses return ``(loss, metrics)``; advantage estimators return ``(advantages, returns)``, both
(B, T). Estimators keep their own signatures (GAE needs a critic, GRPO needs the group size):

    gae(rewards, values, mask, gamma, lam)
    grpo(seq_rewards, mask, group_size, scale_by_std=True, eps=1e-6)
"""

from __future__ import annotations

from typing import Callable

import torch

from ouro_ray.algos.advantages import gae, grpo_advantages
from ouro_ray.algos.dpo import dpo_loss
from ouro_ray.algos.ppo import ppo_policy_loss, value_loss
from ouro_ray.algos.reward import bradley_terry_loss


def dpo_sigmoid_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                     ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                     beta: float, label_smoothing: float = 0.0):
    """``dpo_loss`` with ``kind="sigmoid"`` (DPO, Rafailov et al. 2023, eq. 7)."""
    return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                    ref_rejected_logps, beta, kind="sigmoid", label_smoothing=label_smoothing)


def ipo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float):
    """``dpo_loss`` with ``kind="ipo"`` (IPO, Azar et al. 2023, eq. 17)."""
    return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                    ref_rejected_logps, beta, kind="ipo")


LOSSES: dict[str, Callable] = {
    "dpo_sigmoid": dpo_sigmoid_loss,
    "ipo": ipo_loss,
    "ppo_clip": ppo_policy_loss,
    "value_clip": value_loss,
    "bradley_terry": bradley_terry_loss,
}

ADVANTAGE_ESTIMATORS: dict[str, Callable] = {
    "gae": gae,
    "grpo": grpo_advantages,
}


def get_loss(name: str) -> Callable:
    """The loss registered as ``name``; ValueError listing the valid names otherwise."""
    return _lookup("loss", LOSSES, name)


def get_advantage_estimator(name: str) -> Callable:
    """The advantage estimator registered as ``name``; ValueError listing valid names otherwise."""
    return _lookup("advantage estimator", ADVANTAGE_ESTIMATORS, name)


def _lookup(what: str, table: dict[str, Callable], name: str) -> Callable:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")
    return table[name]
