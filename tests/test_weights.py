"""Weight payloads: full and LoRA packing, bf16 bits, adapter directories, the store's version order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _lora import random_lora

from actors.weights import WeightFollower, WeightStore, publish_weights
from ouro_ray.models.load import load_causal_lm
from ouro_ray.weights import apply_weights, named_tensors, pack_weights, write_adapter_dir


def _lora(model_dir):
    return random_lora(model_dir, seed=1, std=1.0)


def _logits(model, ids=torch.tensor([[1, 5, 9, 13]])):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_full_payload_round_trips_and_bf16_travels_as_bits(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir)
    payload = pack_weights(model.to(torch.bfloat16), version=2)
    assert payload.kind == "full" and set(payload.dtypes.values()) == {"bfloat16"}
    assert all(a.dtype == np.int16 for a in payload.arrays.values())
    other, _ = load_causal_lm(tiny_model_dir, dtype="bfloat16")
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    apply_weights(other, payload)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name


def test_lora_payload_holds_only_the_adapter_and_loads_into_a_fresh_base(tiny_model_dir):
    lora = _lora(tiny_model_dir)
    payload = pack_weights(lora, version=1)
    assert payload.kind == "lora" and all("lora_" in k for k in payload.arrays)
    fresh, _ = load_causal_lm(tiny_model_dir)
    adapted = apply_weights(fresh, payload)
    torch.testing.assert_close(_logits(adapted), _logits(lora))


def test_adapter_directory_is_what_peft_and_vllm_load(tiny_model_dir, tmp_path):
    from peft import PeftModel

    lora = _lora(tiny_model_dir)
    path = write_adapter_dir(pack_weights(lora, version=5), tmp_path / "v5")
    assert {p.name for p in path.iterdir()} == {"adapter_model.safetensors", "adapter_config.json"}
    base, _ = load_causal_lm(tiny_model_dir)
    loaded = PeftModel.from_pretrained(base, str(path))
    torch.testing.assert_close(_logits(loaded), _logits(lora))
    with pytest.raises(ValueError, match="not a LoRA adapter"):
        write_adapter_dir(pack_weights(load_causal_lm(tiny_model_dir)[0], version=6), tmp_path / "v6")


def test_tensors_are_views_of_the_payload_not_copies(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir)
    payload = pack_weights(model, version=0)
    name, tensor = next(iter(named_tensors(payload)))
    assert tensor.data_ptr() == payload.arrays[name].ctypes.data


def test_store_refuses_versions_that_do_not_grow_and_followers_take_only_newer(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir)
    store = WeightStore()
    publish_weights(store, model, version=3)
    publish_weights(store, model, version=3)  # a restarted learner republishes the version it holds
    with pytest.raises(ValueError, match="versions must not go back"):
        publish_weights(store, model, version=2)
    applied = []
    follower = WeightFollower(store, applied.append)
    assert follower.sync() == 3 and follower.sync() == 3 and len(applied) == 1  # version 3 taken once
    with pytest.raises(ValueError, match="version = -1"):
        pack_weights(model, version=-1)
