"""PPO-ptx: the pretraining term is used when its coefficient is set, and refused without data."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ouro_ray.config.learner import LearnerConfig, OptimConfig, PPOConfig
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
