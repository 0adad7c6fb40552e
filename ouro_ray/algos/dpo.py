"""Direct preference losses: DPO (sigmoid) and IPO.

Notation:
    B                      preference pairs in the batch
    policy_chosen_logps    (B,) log pi(y_w | x), summed over the chosen candidate's tokens
    policy_rejected_logps  (B,) log pi(y_l | x), summed over the rejected candidate's tokens
    ref_chosen_logps       (B,) log pi_ref(y_w | x), likewise, from the frozen reference
    ref_rejected_logps     (B,) log pi_ref(y_l | x)
    h                      (B,) the log-ratio difference
                               h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)]

Metrics are detached 0-d tensors (no host sync here; the caller calls ``.item()`` when logging):
    chosen_rewards    mean of beta * (log pi(y_w) - log pi_ref(y_w)), the implicit reward (DPO §5)
    rejected_rewards  mean of beta * (log pi(y_l) - log pi_ref(y_l))
    reward_margin     mean of chosen minus rejected reward, = beta * mean(h)
    accuracy          fraction of pairs whose chosen reward is strictly above the rejected one
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ouro_ray.algos.utils import check_ndim, check_positive, check_same_shape

DPO_KINDS = ("sigmoid", "ipo")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    kind: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Preference loss over (B,) sequence log-probabilities; returns (batch-mean loss, metrics).

    ``kind="sigmoid"``: DPO, Rafailov et al. 2023, eq. 7, per pair

        -log sigma(beta * h),

    with conservative label smoothing eps (the preference label is taken as flipped with
    probability eps; Mitchell 2023, "A note on DPO with noisy preferences", as in TRL):

        (1 - eps) * -log sigma(beta * h)  +  eps * -log sigma(-beta * h).

    ``kind="ipo"``: IPO, Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning
    from Human Preferences", eq. 17 (the empirical IPO loss), with beta playing the paper's tau:

        (h - 1 / (2 * beta))^2.

    h is computed from the log-probabilities exactly as passed. The paper writes h with sequence
    log-likelihoods (sums); TRL's ``ipo`` averages them over tokens instead, so pass per-token
    means here to reproduce TRL. Label smoothing is defined for the sigmoid form only.
    """
    check_same_shape(policy_chosen_logps=policy_chosen_logps,
                     policy_rejected_logps=policy_rejected_logps,
                     ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    check_ndim("policy_chosen_logps", policy_chosen_logps, 1, "(B,) summed sequence logprobs")
    check_positive("beta", beta)
    _check_kind_and_smoothing(kind, label_smoothing)

    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    h = chosen_logratios - rejected_logratios  # (B,)

    if kind == "sigmoid":
        losses = (-(1.0 - label_smoothing) * F.logsigmoid(beta * h)
                  - label_smoothing * F.logsigmoid(-beta * h))  # (B,)
    else:
        losses = (h - 1.0 / (2.0 * beta)) ** 2  # (B,)

    chosen_rewards = beta * chosen_logratios.detach()  # (B,)
    rejected_rewards = beta * rejected_logratios.detach()  # (B,)
    metrics = {
        "chosen_rewards": chosen_rewards.mean(),
        "rejected_rewards": rejected_rewards.mean(),
        "reward_margin": (chosen_rewards - rejected_rewards).mean(),
        "accuracy": (chosen_rewards > rejected_rewards).to(h.dtype).mean(),
    }
    return losses.mean(), metrics


def _check_kind_and_smoothing(kind: str, label_smoothing: float) -> None:
    if kind not in DPO_KINDS:
        raise ValueError(f"dpo_loss kind={kind!r} is not known; "
                         f"valid kinds: {', '.join(DPO_KINDS)}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 0.5); it is the "
                         "probability that a preference label is flipped")
    if kind == "ipo" and label_smoothing != 0.0:
        raise ValueError(f"label_smoothing={label_smoothing!r} is defined for kind='sigmoid' only; "
                         "set label_smoothing=0.0 with kind='ipo'")
