"""How a model directory loads, and how a prompt becomes the tokens it sees.

How a model directory loads (:mod:`ouro_ray.models.resolve` turns what a user names into one): the tiny
world's or any Hugging Face model directory, both through the same ``Auto*`` classes, so a real
model directory works unchanged. Prompts are rendered with the tokenizer's chat template when it has
one (one user turn, then the assistant marker), else encoded as plain text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named in config ('float32', 'bfloat16', 'float16')."""
    if name not in _DTYPES:
        raise ValueError(f"dtype = {name!r}: use one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def load_tokenizer(model_dir: Path | str) -> PreTrainedTokenizerBase:
    """The directory's tokenizer with left padding (what batched decoder-only generation needs)."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{model_dir}: the tokenizer has neither a pad nor an eos token; add a pad token to it")
        tokenizer.pad_token = tokenizer.eos_token  # the usual choice for models shipped without a pad token
    return tokenizer


def load_causal_lm(model_dir: Path | str, *, dtype: str = "float32", device: str = "cpu",
                   trainable: bool = False) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` from an HF directory; frozen and in eval mode unless ``trainable``."""
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype(dtype)).to(device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.train(trainable)
    model.requires_grad_(trainable)
    return model, tokenizer


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt as the policy sees it: a one-turn chat with the assistant's turn opened."""
    if getattr(tokenizer, "chat_template", None):
        rendered = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]
        # The template already carries the special tokens (bos, role markers).
        return [list(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]]
    return [list(ids) for ids in tokenizer(list(prompts))["input_ids"]]
