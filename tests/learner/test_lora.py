"""LoRA through the learner: only the adapter trains and moves; checkpoints keep it; QLoRA's need for CUDA."""

from __future__ import annotations

import pytest
import torch
from _heldout import heldout_metrics

from actors.learner_group import LearnerGroup
from actors.weights import WeightStore
from ouro_ray.config.learner import DPOConfig, LearnerConfig, LoRAConfig, OptimConfig
from ouro_ray.learner.policy import build_policy, qlora_available
from ouro_ray.models.load import load_causal_lm
from ouro_ray.weights import apply_weights


def lora_cfg(**lora) -> LearnerConfig:
    return LearnerConfig(algo="dpo", num_workers=0, optim=OptimConfig(lr=5e-3, micro_batch_size=8),
                         dpo=DPOConfig(beta=0.1), lora=LoRAConfig(enabled=True, r=4, alpha=8, **lora))


def test_lora_dpo_trains_only_the_adapter_and_publishes_it(tiny_model_dir, preference_batches, tmp_path):
    train, held = preference_batches
    store = WeightStore()
    group = LearnerGroup(lora_cfg(), tiny_model_dir, storage_path=str(tmp_path), weight_store=store)
    trainable = {n for n, p in group._local.strategy.module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    for _ in range(3):
        group.update(train)
    payload = store.latest()[1][0]
    assert payload.kind == "lora" and payload.version == 3
    base, _ = load_causal_lm(tiny_model_dir)
    before = heldout_metrics(base, held, pad_id=0)
    adapted = apply_weights(load_causal_lm(tiny_model_dir)[0], payload)
    assert heldout_metrics(adapted, held, pad_id=0)["margin"] > before["margin"] + 0.5
    resumed = LearnerGroup(lora_cfg(), tiny_model_dir, storage_path=str(tmp_path))  # adapter restored from disk
    restored = resumed._local.policy.state_dict()
    for name, value in adapted.state_dict().items():
        if "lora_" in name:
            key = next(k for k in restored if k.endswith(name.split("base_model.model.")[-1]))
            assert torch.equal(restored[key], value), name


def test_unknown_lora_target_is_refused_naming_the_modules(tiny_model_dir):
    with pytest.raises(ValueError, match="not modules of this model"):
        build_policy(tiny_model_dir, LoRAConfig(enabled=True, target_modules=("c_attn",)), with_value=False)


def test_qlora_needs_cuda_and_says_so(tiny_model_dir):
    usable, reason = qlora_available()
    if usable:
        pytest.skip("CUDA and bitsandbytes are here: the 4-bit path runs instead of refusing")
    with pytest.raises(RuntimeError, match="qlora"):
        build_policy(tiny_model_dir, LoRAConfig(enabled=True, qlora=True), with_value=False)
    assert "CUDA" in reason or "bitsandbytes" in reason
