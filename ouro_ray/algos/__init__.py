"""RL and preference-learning math for the update phase: pure functions of tensors.

Modules (each imports only torch; see the notation key at the top of each):
    dpo         dpo_loss (DPO sigmoid, IPO: ``learner.dpo.kind``)
    ppo         ppo_policy_loss (clipped surrogate), value_loss (clipped value loss)
    advantages  gae
    kl          kl_penalty (k1, k2, k3: ``learner.ppo.kl_kind``), AdaptiveKLController, FixedKLController
    shaping     whiten, token_level_rewards, ptx_loss, entropy_bonus
    reward      bradley_terry_loss (the reward model's pairwise loss)
    utils       masked_mean, masked_sum, masked_var, token_logprobs

The learner (:mod:`ouro_ray.learner.updates`) calls them directly; the variants a config chooses
(``dpo.kind``, ``ppo.kl_kind``) are arguments of one function each, checked against their valid names.
"""

from ouro_ray.algos.advantages import gae
from ouro_ray.algos.dpo import dpo_loss
from ouro_ray.algos.kl import AdaptiveKLController, FixedKLController, kl_penalty
from ouro_ray.algos.ppo import ppo_policy_loss, value_loss
from ouro_ray.algos.reward import bradley_terry_loss
from ouro_ray.algos.shaping import entropy_bonus, ptx_loss, token_level_rewards, whiten
from ouro_ray.algos.utils import masked_mean, masked_sum, masked_var, token_logprobs

__all__ = [
    "AdaptiveKLController", "FixedKLController", "bradley_terry_loss", "dpo_loss", "entropy_bonus", "gae",
    "kl_penalty", "masked_mean", "masked_sum", "masked_var", "ppo_policy_loss", "ptx_loss", "token_level_rewards",
    "token_logprobs", "value_loss", "whiten",
]
