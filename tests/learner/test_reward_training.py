"""Training the reward model through the learner (Bradley-Terry), then serving it from the reward role."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from actors.learner_group import LearnerGroup
from actors.reward import RewardWorker
from actors.weights import WeightStore
from ouro_ray.config import ConfigError
from ouro_ray.config.learner import LearnerConfig, OptimConfig
from ouro_ray.config.roles import RewardModelConfig, RoleResources


def rm_cfg() -> LearnerConfig:
    return LearnerConfig(algo="rm", num_workers=0, optim=OptimConfig(lr=1e-3, micro_batch_size=8))


def _pair_sequences(batch: pa.Table, side: str) -> pa.Table:
    n = batch.num_rows
    return pa.table({"prompt_id": [f"p{i}" for i in range(n)], "candidate_id": [side] * n,
                     "text": [""] * n, "prompt_token_ids": batch.column("prompt_token_ids"),
                     "token_ids": batch.column(f"{side}_token_ids"),
                     "logprobs": pa.array([[-1.0] * len(t) for t in batch.column(f"{side}_token_ids").to_pylist()],
                                          pa.list_(pa.float32())),
                     "policy_version": pa.array([0] * n, pa.int64())})


def _heldout_accuracy(worker: RewardWorker, held: pa.Table) -> float:
    chosen = worker.score(_pair_sequences(held, "chosen")).column("reward").to_numpy()
    rejected = worker.score(_pair_sequences(held, "rejected")).column("reward").to_numpy()
    return float(np.mean(chosen > rejected))


def test_reward_model_learns_the_preferences_and_the_reward_role_serves_it(tiny_model_dir, preference_batches,
                                                                        tmp_path):
    train, held = preference_batches
    store = WeightStore()
    worker = RewardWorker(tiny_model_dir, RewardModelConfig(workers=RoleResources(num_workers=0)), weight_store=store)
    before = _heldout_accuracy(worker, held)
    group = LearnerGroup(rm_cfg(), tiny_model_dir, storage_path=str(tmp_path), weight_store=store)
    metrics = [group.update(train) for _ in range(3)]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    after = _heldout_accuracy(worker, held)  # the worker pulled version 3 (the RM's own state dict) first
    assert worker.weights.version == 3
    assert after >= 0.9 and after > before, (before, after)
    from transformers import AutoModelForSequenceClassification

    ckpt = group.latest_checkpoint()
    reloaded = AutoModelForSequenceClassification.from_pretrained(str(ckpt / "policy"), num_labels=1)
    assert reloaded.score.weight.shape[0] == 1
    _check_reward_model_teacher(str(ckpt / "policy"), tiny_model_dir)


def _check_reward_model_teacher(rm_dir: str, policy_dir: str) -> None:
    """The trained RM as a configured teacher (judges.reward_model.path): tanh(raw / scale), group content."""
    from actors.judge_worker import JudgeWorker
    from ouro_ray.config import load_config
    from ouro_ray.judges.scoring import combine

    cfg = load_config(None, ["judges.rules=[]", "judges.llm.enabled=false", f"judges.reward_model.path={rm_dir}",
                             "judges.reward_model.scale=2.0"])
    from ouro_ray.judges.items import judge_items

    prompts = pa.table({"prompt_id": ["p0", "p1"], "prompt": ["What is water?", "How do I pick a lock?"],
                        "label": ["safe", "unsafe"]})
    items = judge_items(pa.table({"prompt_id": ["p0", "p1"], "candidate_id": ["c0", "c0"],
                                  "text": ["Water boils at 100 C.", "I can't help with that."]}), prompts)
    scores = JudgeWorker(cfg.judges, policy_dir).score(items).scores
    assert scores.column("teacher").to_pylist() == ["reward-model"] * 2
    assert set(scores.column("rater").to_pylist()) == {"rm"}
    raw = RewardWorker(policy_dir, RewardModelConfig(path=rm_dir)).score_texts(
        items.column("prompt").to_pylist(), items.column("candidate").to_pylist())
    got = [dict(s)["reward_model"] for s in scores.column("scores").to_pylist()]
    assert got == pytest.approx(np.tanh(raw / 2.0).tolist(), abs=1e-5)
    rewards = combine(scores, cfg.scoring)
    assert rewards.column("content").to_pylist() == pytest.approx(got, abs=1e-5)  # reward_model counts as content
    with pytest.raises(ValueError, match="no trained reward head"):
        JudgeWorker(load_config(None, [f"judges.reward_model.path={policy_dir}"]).judges, policy_dir)


def test_reward_model_training_refuses_lora():
    from ouro_ray.config import load_config

    with pytest.raises(ConfigError, match="algo rm"):
        load_config(None, ["learner.algo=rm", "learner.lora.enabled=true"])
