"""RL and preference-learning math for the update phase: pure functions of tensors.

Modules (each imports only torch; see the notation key at the top of each):
    dpo         dpo_loss (DPO sigmoid, IPO)
    ppo         ppo_policy_loss (clipped surrogate), value_loss (clipped value loss)
    advantages  gae, grpo_advantages
    kl          kl_penalty (k1, k2, k3), AdaptiveKLController, FixedKLController
    shaping     clip_reward, tanh_reward, par_reward, whiten, token_level_rewards, ptx_loss,
                entropy_bonus
    reward      bradley_terry_loss (the reward model's pairwise loss)
    registry    get_loss, get_advantage_estimator
    utils       masked_mean, masked_sum, masked_var, token_logprobs
"""

from ouro_ray.algos.advantages import gae, grpo_advantages
from ouro_ray.algos.dpo import dpo_loss
from ouro_ray.algos.kl import AdaptiveKLController, FixedKLController, kl_penalty
from ouro_ray.algos.ppo import ppo_policy_loss, value_loss
from ouro_ray.algos.registry import ADVANTAGE_ESTIMATORS, LOSSES, get_advantage_estimator, get_loss
from ouro_ray.algos.reward import bradley_terry_loss
from ouro_ray.algos.shaping import clip_reward, entropy_bonus, par_reward, ptx_loss, tanh_reward, token_level_rewards, whiten
from ouro_ray.algos.utils import masked_mean, masked_sum, masked_var, token_logprobs

__all__ = [
    "ADVANTAGE_ESTIMATORS", "LOSSES", "AdaptiveKLController", "FixedKLController", "bradley_terry_loss", "clip_reward",
    "dpo_loss", "entropy_bonus", "gae", "get_advantage_estimator", "get_loss", "grpo_advantages",
    "kl_penalty", "masked_mean", "masked_sum", "masked_var", "par_reward", "ppo_policy_loss",
    "ptx_loss", "tanh_reward", "token_level_rewards", "token_logprobs", "value_loss", "whiten",
]
