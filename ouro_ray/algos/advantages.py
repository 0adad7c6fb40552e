"""The advantage estimator: GAE with a critic (PPO's, Schulman et al. 2016).

Notation:
    B        candidates in the batch
    T        response tokens; each row of ``mask`` is right-padded (1...1 0...0)
    mask     (B, T), 1 on response tokens
    rewards  (B, T) per-token rewards r_t, e.g. ``shaping.token_level_rewards`` (the sequence
             reward on the last valid token, -kl_coef * KL on every valid token)
    values   (B, T) critic values V(s_t)

It returns ``(advantages, returns)``, both (B, T) and 0 on padding; ``returns`` is the regression
target for the critic. No gradient flows (it runs under ``torch.no_grad``): advantages are constants
in the policy loss.
"""

from __future__ import annotations

import torch

from ouro_ray.algos.utils import check_ndim, check_right_padded, check_same_shape, check_unit_interval


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
