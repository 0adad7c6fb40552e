"""The reward model as tensors: loading a scalar head on a causal LM, packing prompt + candidate, pooling.

Shared by the reward role (``actors/reward.py``), which serves it, and the learner
(``ouro_ray/learner/reward_model.py``), which trains it; see the role's module doc for where the
weights come from and why the last *real* token is pooled.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from transformers import AutoModelForSequenceClassification

from ouro_ray.data.tensors import pad_lists
from ouro_ray.models.load import load_tokenizer, torch_dtype
from ouro_ray.seeding import derive_seed

# ---------------------------------------------------------------- model


def _init_new_head(model: torch.nn.Module, missing: set[str], seed: int) -> None:
    """Seeded init of the parameters the checkpoint lacked; they must all be the head's."""
    trunk = f"{model.base_model_prefix}."
    if any(name.startswith(trunk) for name in missing):
        raise ValueError(f"the checkpoint lacks trunk weights {sorted(n for n in missing if n.startswith(trunk))[:3]}; "
                         "fix: point reward_model.path at a causal-LM or reward-model directory saved whole")
    gen = torch.Generator().manual_seed(derive_seed(seed, "reward-head"))
    std = 1.0 / math.sqrt(model.config.get_text_config().hidden_size)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in missing:
                is_weight = name.endswith("weight")
                values = torch.randn(param.shape, generator=gen) * std if is_weight else torch.zeros(param.shape)
                param.copy_(values.to(param.dtype))


def load_reward_model(model_dir: Path | str, *, dtype: str = "float32", device: str = "cpu",
                      seed: int = 0) -> tuple[torch.nn.Module, Any, bool]:
    """``(model, tokenizer, new_head)``: a frozen ``*ForSequenceClassification`` with one output."""
    tokenizer = load_tokenizer(model_dir)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, dtype=torch_dtype(dtype), output_loading_info=True)
    if not hasattr(model, "score"):
        raise ValueError(f"{model_dir}: {type(model).__name__} has no 'score' head; the reward role needs a "
                         "decoder-only model (Llama, Qwen2, GPT-2, …) with a scalar head")
    missing = set(info["missing_keys"])
    if missing:
        _init_new_head(model, missing, seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # HF's own forward pools the last non-pad token
    model.to(device).eval().requires_grad_(False)
    return model, tokenizer, bool(missing)


def same_vocabulary(a: Any, b: Any) -> bool:
    """Whether two tokenizers map the same strings to the same ids (so token ids can be shared)."""
    return a is b or a.get_vocab() == b.get_vocab()


# ---------------------------------------------------------------- tensors


def sequence_tensors(prompt_ids: pa.Array | pa.ChunkedArray, token_ids: pa.Array | pa.ChunkedArray,
                     pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` (B, L) of prompt + candidate right-padded, and ``last`` (B,), each row's last real position.

    ``L = max_i (P_i + T_i)``. Right padding keeps every real token's position id and its causal
    context independent of the padding, so a row's score does not depend on its batch.
    """
    p_ids, p_mask = pad_lists(prompt_ids, pad_value=pad_id, side="right")  # (B, P)
    t_ids, t_mask = pad_lists(token_ids, pad_value=pad_id, side="right")  # (B, T)
    n_rows, width_p = p_ids.shape
    p_len, t_len = p_mask.sum(dim=1), t_mask.sum(dim=1)  # (B,)
    width = int((p_len + t_len).max()) if n_rows else 0
    ids = torch.full((n_rows, width_p + t_ids.shape[1]), pad_id, dtype=torch.long)
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    ids[:, :width_p], mask[:, :width_p] = p_ids, p_mask
    cols = p_len[:, None] + torch.arange(t_ids.shape[1])  # (B, T): where candidate token j of row i goes
    rows = torch.arange(n_rows)[:, None].expand_as(cols)
    ids[rows[t_mask], cols[t_mask]] = t_ids[t_mask]
    mask[rows[t_mask], cols[t_mask]] = True
    return ids[:, :width], mask[:, :width], p_len + t_len - 1


@torch.no_grad()
def pooled_rewards(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
    """(B,) float32 raw scalar of each row: the head applied to the hidden state at ``last``."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, ids.shape[0], batch_size):
        width = int(last[s:s + batch_size].max()) + 1  # trim this chunk's padding
        hidden = model.base_model(input_ids=ids[s:s + batch_size, :width].to(device),  # (b, L, H) below
                                  attention_mask=mask[s:s + batch_size, :width].long().to(device)).last_hidden_state
        pooled = hidden[torch.arange(hidden.shape[0], device=device), last[s:s + batch_size].to(device)]  # (b, H)
        out.append(model.score(pooled)[:, 0].float().cpu())  # (b,)
    return torch.cat(out) if out else torch.zeros(0)
