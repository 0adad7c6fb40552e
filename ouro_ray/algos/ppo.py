"""PPO: the clipped policy surrogate and the clipped value loss.

Notation:
    B             candidates in the batch
    T             response tokens (right-padded)
    mask          (B, T), 1 on response tokens
    logprobs      (B, T) log pi_theta(a_t | s_t) under the policy being optimised
    old_logprobs  (B, T) log pi_theta_old(a_t | s_t) recorded when the candidates were sampled
    advantages    (B, T) A_t, e.g. from ``ouro_ray.algos.advantages.gae``
    ratio         (B, T) r_t = pi_theta / pi_theta_old = exp(logprobs - old_logprobs)
    values        (B, T) V_phi(s_t) under the critic being optimised
    old_values    (B, T) V_phi_old(s_t) recorded at sampling time
    returns       (B, T) regression targets R_t (advantages + old values, for GAE)

Both losses are token means: every valid token of the whole batch weighs the same, so long
candidates weigh more than short ones. Metrics are detached 0-d tensors.
"""

from __future__ import annotations

import torch

from ouro_ray.algos.utils import check_ndim, check_positive, check_same_shape, masked_mean, masked_var


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate, PPO, Schulman et al. 2017, eq. 7, negated into a loss, per token:

        pg_loss = max(-A_t * r_t, -A_t * clip(r_t, 1 - eps, 1 + eps)),

    then the token mean over valid tokens. Returns (loss, metrics):

        clip_fraction  fraction of valid tokens where the clipped term is strictly the larger, i.e.
                       where clipping is active and the token gives no gradient (r_t > 1 + eps with
                       A_t > 0, or r_t < 1 - eps with A_t < 0). Tokens outside the band whose
                       advantage pushes r_t back inside keep their gradient and are not counted.
        approx_kl      token mean of (r_t - 1) - log r_t, the k3 estimator (Schulman, "Approximating
                       KL divergence", 2020) of KL(pi_old || pi_theta) on samples from pi_old.
        ratio_mean     token mean of r_t.
    """
    check_same_shape(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages, mask=mask)
    check_ndim("logprobs", logprobs, 2, "(B, T)")
    check_positive("clip_eps", clip_eps)

    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    pg_loss_unclipped = -advantages * ratio  # (B, T)
    pg_loss_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)  # (B, T)
    pg_loss = torch.maximum(pg_loss_unclipped, pg_loss_clipped)  # (B, T)

    with torch.no_grad():
        clipped = (pg_loss_clipped > pg_loss_unclipped).to(ratio.dtype)  # (B, T)
        metrics = {
            "clip_fraction": masked_mean(clipped, mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return masked_mean(pg_loss, mask), metrics


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss as in OpenAI baselines ``ppo2`` (also OpenRLHF, verl), per token:

        V_clipped = V_old + clip(V - V_old, -eps, eps)
        vf_loss   = 0.5 * max((V - R)^2, (V_clipped - R)^2),

    then the token mean over valid tokens. The clip keeps the critic within eps of the values the
    advantages were computed from (PPO paper §5 uses the unclipped squared error). Returns
    (loss, metrics):

        value_clip_fraction  fraction of valid tokens where the clipped error is strictly the
                             larger (the token gives no gradient to the critic).
        explained_variance   1 - Var(R - V) / Var(R) over valid tokens; 1 is a perfect critic,
                             0 no better than the mean return; reported as 0 when Var(R) = 0.
        value_mean           token mean of V.
    """
    check_same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    check_ndim("values", values, 2, "(B, T)")
    check_positive("clip_eps", clip_eps)

    values_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)  # (B, T)
    vf_loss_unclipped = (values - returns) ** 2  # (B, T)
    vf_loss_clipped = (values_clipped - returns) ** 2  # (B, T)
    vf_loss = 0.5 * torch.maximum(vf_loss_unclipped, vf_loss_clipped)  # (B, T)

    with torch.no_grad():
        clipped = (vf_loss_clipped > vf_loss_unclipped).to(values.dtype)  # (B, T)
        var_returns = masked_var(returns, mask)
        var_residual = masked_var(returns - values, mask)
        explained = torch.where(var_returns > 0, 1.0 - var_residual / var_returns,
                                torch.zeros_like(var_returns))
        metrics = {
            "value_clip_fraction": masked_mean(clipped, mask),
            "explained_variance": explained,
            "value_mean": masked_mean(values, mask),
        }
    return masked_mean(vf_loss, mask), metrics
