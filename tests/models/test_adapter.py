"""A LoRA run's policy as a model: the adapter a run exports is merged into its base once, and every command
that resolves a model (``resolve_model``) gets a whole directory whose logits are the adapted model's."""

from __future__ import annotations

import json

import pytest
import torch
from _lora import random_lora

from ouro_ray.models.load import load_causal_lm
from ouro_ray.models.resolve import ModelNotFoundError, resolve_model


def _adapted(model_dir: str):
    return random_lora(model_dir, seed=3, std=0.5)


def _logits(model, ids=torch.tensor([[1, 5, 9, 13, 2]])):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _lora_run(tmp_path, lora):
    run = tmp_path / "run"
    (run / "policy").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    lora.save_pretrained(run / "policy")  # what a LoRA run exports: adapter_config.json + adapter_model.safetensors
    return run


def test_a_lora_runs_policy_resolves_to_its_adapter_merged_into_the_base_once(tiny_model_dir, tmp_path):
    lora = _adapted(tiny_model_dir)
    run = _lora_run(tmp_path, lora)
    said = []
    resolved = resolve_model(run, progress=said.append)
    assert resolved.run_dir == run and (resolved.model_dir / "config.json").is_file()
    assert resolved.model_dir.parent == run / ".merged" and len(said) == 1 and "merging the LoRA adapter" in said[0]
    merged, tokenizer = load_causal_lm(resolved.model_dir)
    torch.testing.assert_close(_logits(merged), _logits(lora), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(_logits(merged), _logits(load_causal_lm(tiny_model_dir)[0]))  # the adapter counts
    assert tokenizer.chat_template  # the base's tokenizer travels with it
    assert resolve_model(run, progress=said.append).model_dir == resolved.model_dir and len(said) == 1  # cached

    # a newer adapter (the next round's) is merged again into a directory of its own; the stale one goes
    with torch.no_grad():
        next(p for n, p in lora.named_parameters() if "lora_B" in n).add_(0.1)
    lora.save_pretrained(run / "policy")
    newer = resolve_model(run).model_dir
    assert newer != resolved.model_dir and not resolved.model_dir.exists()
    torch.testing.assert_close(_logits(load_causal_lm(newer)[0]), _logits(lora), rtol=1e-4, atol=1e-4)
    # the adapter directory itself and a learner checkpoint holding one resolve the same way
    assert resolve_model(run / "policy").model_dir == newer
    ckpt = run / "train" / "learner" / "checkpoint_000001"
    (ckpt / "policy").mkdir(parents=True)
    (ckpt / "learner_state.json").write_text("{}")
    lora.save_pretrained(ckpt / "policy")
    assert (resolve_model(ckpt).model_dir / "config.json").is_file() and resolve_model(ckpt).run_dir == run


def test_an_adapter_whose_base_is_gone_names_it_and_the_fix(tiny_model_dir, tmp_path):
    run = _lora_run(tmp_path, _adapted(tiny_model_dir))
    config = run / "policy" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": "/nowhere/base"}))
    with pytest.raises(ModelNotFoundError, match=r"trained on '/nowhere/base'.*fix: make that base model available"):
        resolve_model(run, key="--policy")
