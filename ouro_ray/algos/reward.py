"""The reward model's loss: Bradley-Terry on preference pairs.

Notation:
    B                 pairs in the batch
    chosen_rewards    (B,) r_θ(x, y_w), the reward model's scalar for the preferred candidate
    rejected_rewards  (B,) r_θ(x, y_l), the same for the dispreferred one
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ouro_ray.algos.utils import check_ndim, check_same_shape


def bradley_terry_loss(chosen_rewards: torch.Tensor,
                       rejected_rewards: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pairwise reward-model loss, InstructGPT (Ouyang et al. 2022), eq. 1, batch mean:

        loss = -log σ(r_θ(x, y_w) - r_θ(x, y_l)),

    the negative log-likelihood of the preferences under a Bradley-Terry model whose scores are the
    rewards. Metrics: ``accuracy`` (share of pairs with chosen > rejected), ``margin`` (mean
    difference), ``chosen_rewards`` and ``rejected_rewards`` (means).
    """
    check_ndim("chosen_rewards", chosen_rewards, 1, "(B,)")
    check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    margin = chosen_rewards.float() - rejected_rewards.float()  # (B,)
    loss = -F.logsigmoid(margin).mean()
    metrics = {"accuracy": (margin > 0).float().mean().detach(), "margin": margin.mean().detach(),
               "chosen_rewards": chosen_rewards.float().mean().detach(),
               "rejected_rewards": rejected_rewards.float().mean().detach()}
    return loss, metrics
