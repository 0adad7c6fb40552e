"""KL penalty estimators and the KL coefficient controllers.

Notation:
    B             candidates in the batch
    T             response tokens
    logprobs      (B, T) log pi(a_t | s_t) under the policy that sampled the candidates
    ref_logprobs  (B, T) log pi_ref(a_t | s_t) under the frozen reference
    r             (B, T) the ratio pi_ref / pi = exp(ref_logprobs - logprobs)

Direction and sign: every estimator here estimates
    KL(pi || pi_ref) = E_{a ~ pi}[log pi(a) - log pi_ref(a)]
from tokens sampled from pi (Schulman, "Approximating KL divergence", 2020, whose r = p/q for
x ~ q reads here q = pi, p = pi_ref). The penalty is *subtracted* from the reward
(``shaping.token_level_rewards``), so a positive value pushes the policy back towards pi_ref.
"""

from __future__ import annotations

import torch

from ouro_ray.algos.utils import check_positive, check_same_shape

KL_KINDS = ("k1", "k2", "k3")


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate, (B, T), with log r = ref_logprobs - logprobs:

        k1 = -log r              unbiased, high variance, can be negative per token
        k2 = 1/2 (log r)^2       biased, low variance, >= 0
        k3 = (r - 1) - log r     unbiased, low variance, >= 0

    k3 exponentiates log r unclamped: a token the reference finds far likelier than the policy
    gives a large penalty, by design of the estimator. Padding is the caller's to mask.
    """
    check_same_shape(logprobs=logprobs, ref_logprobs=ref_logprobs)
    log_r = ref_logprobs - logprobs  # (B, T)
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r ** 2
    if kind == "k3":
        return torch.expm1(log_r) - log_r  # (r - 1) - log r; expm1 is exact near r = 1
    raise ValueError(f"kl_penalty kind={kind!r} is not known; valid kinds: {', '.join(KL_KINDS)}")


class AdaptiveKLController:
    """The adaptive KL coefficient of Ziegler et al. 2019, "Fine-Tuning Language Models from Human
    Preferences", eq. 2 (§2.2):

        e_t       = clip((KL_t - KL_target) / KL_target, -0.2, 0.2)
        beta_{t+1} = beta_t * (1 + K_beta * e_t),   K_beta = n_steps / horizon,

    so the coefficient grows while the measured KL is above target and shrinks while below, by
    at most 20% of n_steps / horizon per update. ``n_steps`` is the number of samples (episodes)
    the KL was measured on, as in the paper and TRL.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        if not init_kl_coef >= 0:
            raise ValueError(f"init_kl_coef must be >= 0, got {init_kl_coef!r}")
        check_positive("target", target)
        check_positive("horizon", horizon)
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Adapt the coefficient to the KL measured over ``n_steps`` samples; returns it."""
        if not n_steps >= 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps!r}")
        proportional_error = min(max((float(current_kl) - self.target) / self.target, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value


class FixedKLController:
    """A constant KL coefficient with the controller API (``update`` changes nothing)."""

    def __init__(self, kl_coef: float):
        if not kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef!r}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Ignore the measurement; returns the unchanged value."""
        return self.value
