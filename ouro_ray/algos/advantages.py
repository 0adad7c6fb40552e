"""Advantage estimators: GAE (with a critic) and group-normalised GRPO (critic-free).

Notation:
    B        candidates in the batch
    T        response tokens; each row of ``mask`` is right-padded (1...1 0...0)
    G        candidates per prompt (GRPO); the batch holds B / G consecutive groups
    mask     (B, T), 1 on response tokens
    rewards  (B, T) per-token rewards r_t, e.g. ``shaping.token_level_rewards`` (the sequence
             reward on the last valid token, -kl_coef * KL on every valid token)
    values   (B, T) critic values V(s_t)

Each estimator returns ``(advantages, returns)``, both (B, T) and 0 on padding; ``returns`` is the
regression target for the critic (GAE) or the reward-to-go (GRPO). The estimators carry no
gradient (they run under ``torch.no_grad``): advantages are constants in the policy loss.
"""

from __future__ import annotations

import torch

from ouro_ray.algos.utils import check_ndim, check_positive, check_right_padded, check_same_shape, check_unit_interval


@torch.no_grad()
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, Schulman et al. 2016, eqs. 11-16:

        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * A_{t+1}            (eq. 16, as a recursion)
        R_t     = A_t + V(s_t)                               (the TD(lambda) return)

    The episode ends at each row's last valid token: V after it is 0 (no bootstrap) and A after it
    is 0. Vectorised over B, one reverse loop over T. Rewards and values on padding are ignored.
    """
    check_same_shape(rewards=rewards, values=values, mask=mask)
    check_ndim("rewards", rewards, 2, "(B, T)")
    check_unit_interval("gamma", gamma)
    check_unit_interval("lam", lam)
    check_right_padded(mask)

    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask  # (B, T); padding can hold anything
    advantages = torch.zeros_like(values)  # (B, T)
    next_value = torch.zeros_like(values[:, 0])  # (B,) V(s_{t+1}); 0 past the last valid token
    next_advantage = torch.zeros_like(values[:, 0])  # (B,) A_{t+1}
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]  # (B,)
        advantages[:, t] = next_advantage
        next_value = values[:, t]  # already 0 on padding, so the last valid token bootstraps 0
    returns = (advantages + values) * mask  # (B, T)
    return advantages, returns


@torch.no_grad()
def grpo_advantages(
    seq_rewards: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    scale_by_std: bool = True,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantages, GRPO, Shao et al. 2024 (DeepSeekMath), §4.1.2, outcome
    supervision: for the G candidates of one prompt with sequence rewards r_1..r_G,

        A_i = (r_i - mean(r)) / (std(r) + eps),

    the same A_i on every valid token of candidate i. std is the sample (unbiased, n - 1) standard
    deviation, as in the TRL and verl implementations; ``scale_by_std=False`` keeps only the mean
    baseline (Dr. GRPO, Liu et al. 2025). Rows b*G .. b*G + G - 1 are one prompt's group.
    ``returns`` is the reward-to-go with gamma = 1: r_i on every valid token.
    """
    check_ndim("seq_rewards", seq_rewards, 1, "(B,)")
    check_ndim("mask", mask, 2, "(B, T)")
    if mask.shape[0] != seq_rewards.shape[0]:
        raise ValueError(f"seq_rewards has {seq_rewards.shape[0]} rows but mask has "
                         f"{mask.shape[0]}; both must have one row per candidate")
    if group_size < 2 or seq_rewards.shape[0] % group_size != 0:
        raise ValueError(f"group_size={group_size!r} must be >= 2 and divide the batch size "
                         f"{seq_rewards.shape[0]}; sample group_size candidates per prompt")
    check_positive("eps", eps)

    grouped = seq_rewards.reshape(-1, group_size)  # (B / G, G)
    centred = grouped - grouped.mean(dim=-1, keepdim=True)  # (B / G, G)
    if scale_by_std:
        centred = centred / (grouped.std(dim=-1, keepdim=True) + eps)  # (B / G, G)
    mask = mask.to(seq_rewards.dtype)
    advantages = centred.reshape(-1, 1) * mask  # (B, T)
    returns = seq_rewards.reshape(-1, 1) * mask  # (B, T)
    return advantages, returns
