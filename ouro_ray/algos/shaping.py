"""Reward shaping and the auxiliary terms mixed into the policy loss.

Notation:
    B           candidates in the batch
    T           response tokens (right-padded)
    V           vocabulary size
    mask        (B, T), 1 on response tokens
    seq_reward  (B,) one scalar reward per candidate (judge or reward model)
    kl          (B, T) per-token KL estimate, e.g. ``kl.kl_penalty``

``whiten`` centres and scales the advantages; ``token_level_rewards`` places the sequence reward and
the KL penalty on tokens; ``ptx_loss`` and ``entropy_bonus`` are the auxiliary terms. (The rewards are
bounded where they are made: every teacher scores in [-1, 1] and stage 5 combines them by weighted mean.)
"""

from __future__ import annotations

from typing import Optional

import torch

from ouro_ray.algos.utils import check_ndim, check_positive, check_same_shape, masked_mean, masked_var


def whiten(
    x: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    shift_mean: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps), with mean and population variance over the valid positions.

    ``shift_mean=False`` adds the mean back after scaling, so only the spread changes (TRL's
    convention; for reward scaling that keeps the sign of the average reward). Positions where
    ``mask`` is 0 are 0 in the output. TRL uses the unbiased variance; with the token counts of a
    batch the difference is negligible, and the population variance makes the unit-variance
    property exact.
    """
    if mask is None:
        mask = torch.ones_like(x)
    check_same_shape(x=x, mask=mask)
    check_positive("eps", eps)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def token_level_rewards(
    seq_reward: torch.Tensor,
    kl: torch.Tensor,
    kl_coef: float,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Per-token rewards for PPO (Ziegler et al. 2019, §2.2; Stiennon et al. 2020, eq. 1):

        r_t = -kl_coef * KL_t  on every valid token,  plus  seq_reward  on the last valid token,

    0 on padding; (B, T). The last valid token is found per row, so ragged rows are fine. A row
    with no valid token raises: its reward would be lost.
    """
    check_ndim("seq_reward", seq_reward, 1, "(B,)")
    check_same_shape(kl=kl, mask=mask)
    check_ndim("kl", kl, 2, "(B, T)")
    if kl.shape[0] != seq_reward.shape[0]:
        raise ValueError(f"seq_reward has {seq_reward.shape[0]} rows but kl has {kl.shape[0]}; "
                         "both need one row per candidate")
    if not kl_coef >= 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef!r}")
    valid = mask.to(kl.dtype)
    empty = valid.sum(dim=-1) == 0  # (B,)
    if bool(empty.any()):
        raise ValueError(f"mask rows {torch.nonzero(empty).flatten().tolist()[:8]} have no valid "
                         "token; drop empty candidates before shaping their rewards")
    positions = torch.arange(kl.shape[1], device=kl.device).expand_as(kl)  # (B, T)
    last = torch.where(valid > 0, positions, -1).amax(dim=-1, keepdim=True)  # (B, 1)
    rewards = -kl_coef * kl * valid  # (B, T)
    return rewards.scatter_add(1, last, seq_reward.to(kl.dtype).unsqueeze(-1))  # (B, T)


def ptx_loss(
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The pretraining term of PPO-ptx, InstructGPT, Ouyang et al. 2022, eq. 2, as a loss:

        objective += gamma * E_{x ~ D_pretrain}[log pi(x)]  ->  loss = coef * token-mean NLL,

    with ``logprobs`` (B, T) = log pi(x_t | x_<t) of pretraining tokens (``utils.token_logprobs``
    from logits) and ``coef`` the paper's gamma. Add it to the policy loss. Metrics: ``ptx_nll``.
    """
    check_same_shape(logprobs=logprobs, mask=mask)
    if not coef >= 0:
        raise ValueError(f"ptx coef must be >= 0, got {coef!r}")
    nll = -masked_mean(logprobs, mask)
    return coef * nll, {"ptx_nll": nll.detach()}


def entropy_bonus(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean entropy H = -sum_v p_v log p_v of the policy over valid tokens, >= 0, with grad.

    A *bonus*: subtract it, ``loss = pg_loss - entropy_coef * entropy_bonus(logits, mask)``, so
    minimising the loss raises the entropy (PPO, Schulman et al. 2017, eq. 9, the c2 S term).
    The uniform distribution over V tokens gives log V.
    """
    check_ndim("logits", logits, 3, "(B, T, V)")
    if mask.shape != logits.shape[:2]:
        raise ValueError(f"mask must be (B, T) = {tuple(logits.shape[:2])} to match logits "
                         f"{tuple(logits.shape)}, got {tuple(mask.shape)}")
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    entropy = -(logp.exp() * logp).sum(dim=-1)  # (B, T)
    return masked_mean(entropy, mask)
