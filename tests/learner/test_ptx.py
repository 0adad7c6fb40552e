"""Supervised terms: PPO-ptx (used when its coefficient is set, refused without data) and DPO's chosen-side NLL
(RPO, ``learner.dpo.nll_coef``); and PPO's early stop on the approximate KL (``learner.ppo.stop_kl``)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from ouro_ray.config import ConfigError, load_config
from ouro_ray.config.learner import DPOConfig, LearnerConfig, OptimConfig, PPOConfig
from ouro_ray.data.shards import to_table
from ouro_ray.learner.learner import PolicyLearner


def _experience() -> pa.Table:
    rows = [{"prompt_id": f"p{i}", "candidate_id": "c0", "prompt_token_ids": [1, 3, 7, 4], "token_ids": [9, 12, 2],
             "old_logprobs": [-2.0, -2.5, -1.0], "ref_logprobs": [-2.0, -2.5, -1.0], "values": None,
             "reward": float(i % 2), "policy_version": 0} for i in range(4)]
    return to_table(rows, "experience")


def _ptx() -> pa.Table:
    return to_table([{"prompt_id": "pre", "candidate_id": f"t{i}", "prompt_token_ids": [1],
                      "token_ids": [20 + i, 30 + i, 2]} for i in range(3)], "token_sequences")


def test_ptx_term_enters_the_loss_and_is_refused_without_data(tiny_model_dir):
    cfg = LearnerConfig(algo="ppo", num_workers=0, optim=OptimConfig(lr=1e-4, micro_batch_size=2),
                        ppo=PPOConfig(ptx_coef=0.5, epochs=1))
    learner = PolicyLearner(cfg, tiny_model_dir)
    with pytest.raises(ValueError, match="ptx_coef"):
        learner.update(_experience())
    metrics = learner.update(_experience(), ptx=_ptx())
    assert metrics["ptx_nll"] > 0  # a token-mean NLL of text the model was not trained on
    without = PolicyLearner(LearnerConfig(algo="ppo", num_workers=0, optim=OptimConfig(micro_batch_size=2),
                                          ppo=PPOConfig(epochs=1)), tiny_model_dir).update(_experience())
    assert "ptx_nll" not in without


def test_rpo_adds_the_chosen_texts_nll_to_dpo_and_keeps_them_likelier_than_plain_dpo(tiny_model_dir,
                                                                                      preference_batches):
    train, _ = preference_batches

    def learner(nll_coef: float) -> PolicyLearner:
        return PolicyLearner(LearnerConfig(algo="dpo", num_workers=0,
                                           optim=OptimConfig(lr=1e-3, micro_batch_size=train.num_rows),
                                           dpo=DPOConfig(beta=0.1, nll_coef=nll_coef)), tiny_model_dir)

    rpo, plain = learner(1.0), learner(0.0)
    first = rpo.update(train)  # one micro-batch, measured before the step: the policy is still the reference
    n_tokens = sum(len(ids) for ids in train.column("chosen_token_ids").to_pylist())
    nll = -sum(train.column("ref_chosen_logps").to_pylist()) / n_tokens  # the reference's token-mean NLL
    assert first["chosen_nll"] == pytest.approx(nll, rel=1e-3)
    assert first["loss"] == pytest.approx(math.log(2) + nll, rel=1e-3)  # DPO's log 2 at h = 0, plus the NLL
    assert "chosen_nll" not in plain.update(train)
    for _ in range(3):
        after_rpo, after_plain = rpo.update(train), plain.update(train)
    # the NLL term pulls the chosen texts up: their implicit reward beta * (log pi - log pi_ref) ends higher
    assert after_rpo["chosen_rewards"] > after_plain["chosen_rewards"] + 0.05
    assert after_rpo["chosen_nll"] < nll


def test_stop_kl_ends_the_epochs_once_the_policy_has_moved_that_far(tiny_model_dir):
    """learner.ppo.stop_kl (cleanrl's target_kl): with a bound every update exceeds after one epoch, 1 of 4 epochs
    runs; without it, or with a bound no update reaches, all 4 do."""
    def update(stop_kl):
        cfg = LearnerConfig(algo="ppo", num_workers=0, optim=OptimConfig(lr=1e-2, micro_batch_size=2),
                            ppo=PPOConfig(epochs=4, stop_kl=stop_kl))
        return PolicyLearner(cfg, tiny_model_dir).update(_experience())

    stopped, full, loose = update(1e-9), update(None), update(1e3)
    assert stopped["approx_kl"] > 1e-9  # lr 1e-2 moves the policy within the first epoch
    assert (stopped["epochs"], full["epochs"], loose["epochs"]) == (1.0, 4.0, 4.0)
    with pytest.raises(ConfigError, match="learner.ppo.stop_kl = 0.0: must be > 0.0"):
        load_config(None, ["learner.ppo.stop_kl=0"])

