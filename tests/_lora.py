"""A LoRA-wrapped small model whose adapter is not a no-op: ``lora_B`` drawn at random (peft starts it at zero)."""

from __future__ import annotations

import torch

from ouro_ray.models.load import load_causal_lm


def random_lora(model_dir: str, seed: int = 1, std: float = 1.0):
    from peft import LoraConfig, get_peft_model

    base, _ = load_causal_lm(model_dir)
    lora = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std, generator=g)
    return lora
