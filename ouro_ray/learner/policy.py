"""The trainable module: the policy (full or LoRA / QLoRA through peft) and, for PPO, a value head.

``PolicyWithValue`` keeps both in one ``nn.Module`` so one DDP wrapper or DeepSpeed engine holds all
trainable parameters. The value head reads the last hidden state at the position that predicts each
candidate token, so ``values[:, t]`` is V(s_t) for the state before token t.
"""

from __future__ import annotations

import torch
from torch import nn

from ouro_ray.config.learner import LoRAConfig
from ouro_ray.models.load import load_causal_lm
from ouro_ray.models.logprobs import response_forward


class PolicyWithValue(nn.Module):
    """The policy and an optional scalar value head on its last hidden layer."""

    def __init__(self, policy: nn.Module, with_value: bool):
        super().__init__()
        self.policy = policy
        hidden = policy.config.hidden_size
        self.value_head = nn.Linear(hidden, 1) if with_value else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)  # V = 0 at the start: advantages begin as the rewards
            nn.init.zeros_(self.value_head.bias)

    def forward(self, prompt_ids, prompt_mask, response_ids, response_mask):
        """``(logits (B, T, V), values (B, T) or None)`` at the positions predicting the response."""
        logits, states = response_forward(self.policy, prompt_ids, prompt_mask, response_ids, response_mask,
                                          hidden=self.value_head is not None)
        values = None if states is None else self.value_head(states.float()).squeeze(-1)  # (B, T)
        return logits, values


def attach_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """The model with a LoRA adapter on ``cfg.target_modules`` (only the adapter trains)."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in cfg.target_modules if m not in names]
    if missing:
        raise ValueError(f"learner.lora.target_modules {missing} are not modules of this model; fix: pick from "
                         f"{sorted(n for n in names if n.endswith('proj'))}")
    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def qlora_available() -> tuple[bool, str]:
    """(usable, reason): 4-bit QLoRA needs CUDA and bitsandbytes."""
    if not torch.cuda.is_available():
        return False, "QLoRA's 4-bit weights need a CUDA GPU (bitsandbytes kernels); none is visible"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False, "QLoRA needs the bitsandbytes package; install it on the GPU nodes"
    return True, ""


def _load_4bit(model_dir: str) -> nn.Module:
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant, device_map={"": 0})
    return prepare_model_for_kbit_training(model)


def build_policy(model_dir: str, lora: LoRAConfig, *, with_value: bool, device: str = "cpu",
                 dtype: str = "float32") -> PolicyWithValue:
    """The trainable policy from an HF directory: full weights, LoRA, or QLoRA (4-bit base + LoRA)."""
    if lora.qlora:
        usable, reason = qlora_available()
        if not usable:
            raise RuntimeError(f"learner.lora.qlora = true but {reason}; fix: set learner.lora.qlora=false "
                               "(plain LoRA works on CPU)")
        policy = attach_lora(_load_4bit(model_dir), lora)
    else:
        policy, _ = load_causal_lm(model_dir, dtype=dtype, device=device, trainable=True)
        if lora.enabled:
            policy = attach_lora(policy, lora)
    return PolicyWithValue(policy, with_value).to(device)
