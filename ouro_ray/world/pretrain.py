"""Pretraining of the tiny causal LM from scratch on the corpus rendered with the chat template.

Notation: ``B`` dialogs in a batch, ``T`` tokens in the longest of them (at most ``max_seq_len``).
The loss is the usual next-token cross-entropy over every real token (padding is masked out), so
the model learns the whole mixture: both voices, refusals, placeholder compliance, over-refusal.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from ouro_ray.config.world import PretrainConfig, TinyModelConfig
from ouro_ray.world.corpus import dialog_messages

_ARCHS = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
IGNORE_INDEX = -100
"""Label of positions that do not count in the loss (padding)."""


@dataclass(frozen=True)
class PretrainResult:
    """Loss on a fixed batch of the corpus before and after training, and the logged train losses."""

    initial_loss: float
    final_loss: float
    train_losses: tuple[tuple[int, float], ...]


def build_model(cfg: TinyModelConfig, tokenizer, seed: int) -> PreTrainedModel:
    """A freshly initialised tiny causal LM whose vocab and special ids match ``tokenizer``."""
    if cfg.arch not in _ARCHS:
        raise ValueError(f"world.model.arch = {cfg.arch!r}: must be one of {sorted(_ARCHS)}")
    config_cls, model_cls = _ARCHS[cfg.arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_seq_len,
        # The library defaults for these ids lie outside a tiny vocab, so take them from the tokenizer.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = model_cls(config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = config.bos_token_id, config.eos_token_id, config.pad_token_id
    # Without this `generate` stops at 20 tokens total; callers usually pass their own max_new_tokens.
    gen.max_new_tokens = cfg.max_seq_len // 2
    return model


def encode_dialogs(tokenizer, dialogs: Sequence[dict], max_seq_len: int) -> list[torch.Tensor]:
    """Each dialog rendered with the chat template and tokenized, cut to ``max_seq_len`` tokens."""
    texts = [tokenizer.apply_chat_template(dialog_messages(d), tokenize=False) for d in dialogs]
    # The template already starts with bos, so the tokenizer must add nothing.
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_seq_len)["input_ids"]
    return [torch.tensor(x, dtype=torch.long) for x in ids]


def pretrain(
    model: PreTrainedModel,
    examples: Sequence[torch.Tensor],
    cfg: PretrainConfig,
    pad_id: int,
    seed: int,
    progress: Callable[[str], None],
) -> PretrainResult:
    """Train ``model`` in place with AdamW on random batches of ``examples``."""
    if not examples:
        raise ValueError("pretrain got no examples; fix: set world.corpus.n_dialogs >= 1")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(core_count())
    try:
        return _train(model, examples, cfg, pad_id, seed, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train(model, examples, cfg: PretrainConfig, pad_id: int, seed: int, progress) -> PretrainResult:
    gen = torch.Generator().manual_seed(seed)
    eval_batch = collate(examples[: min(len(examples), 4 * cfg.batch_size)], pad_id)
    initial = evaluate_loss(model, eval_batch)
    progress(f"pretrain: {cfg.steps} steps, batch {cfg.batch_size}, initial loss {initial:.3f}")

    def batch(step: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen).tolist()
        return collate([examples[i] for i in idx], pad_id)

    logged = train_steps(model, batch, cfg, lambda step, mean, lr, _: progress(
        f"pretrain: step {step}/{cfg.steps} loss {mean:.3f} lr {lr:.2e}"))
    final = evaluate_loss(model, eval_batch)
    progress(f"pretrain: done, loss {initial:.3f} -> {final:.3f}")
    return PretrainResult(initial, final, tuple(logged))


def train_steps(model, batch: Callable[[int], dict[str, torch.Tensor]], cfg,
                report: Callable[[int, float, float, float], None],
                loss_fn: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor] | None = None) -> list[tuple[int, float]]:
    """``cfg.steps`` AdamW steps (lr, warmup_steps, weight_decay, log_every from ``cfg``) on ``batch(step)``;
    every ``log_every`` steps ``report(step, mean loss, lr, seconds)``. Returns the logged mean losses.
    ``loss_fn(model, batch)``: the loss (default: the model's own next-token loss over every label)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
    model.train()
    logged, running, started = [], [], time.perf_counter()
    for step in range(1, cfg.steps + 1):
        b = batch(step)
        loss = model(**b).loss if loss_fn is None else loss_fn(model, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps:
            logged.append((step, sum(running) / len(running)))
            running = []
            report(step, logged[-1][1], schedule.get_last_lr()[0], time.perf_counter() - started)
    return logged


def collate(examples: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padding is masked from attention and from the loss."""
    longest = max(len(x) for x in examples)
    input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)  # (B, T)
    for row, x in enumerate(examples):
        input_ids[row, : len(x)] = x
        attention_mask[row, : len(x)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)  # (B, T)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@torch.no_grad()
def evaluate_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> float:
    """Mean next-token loss of ``model`` on ``batch``, in eval mode."""
    was_training = model.training
    model.eval()
    loss = model(**batch).loss.item()
    model.train(was_training)
    return loss


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0.1 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): there, autocast to bf16 trains
    a small model about 30 % faster; elsewhere it emulates bf16 and is slower, so training stays fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
