"""Build the world's judge: its own tokenizer and small LM, trained on ground-truth-labelled judge prompts.

Notation: ``B`` examples in a batch, ``T`` tokens in the longest. An example is a judge prompt and
the completion a competent judge gives (:mod:`ouro_ray.world_judge.examples`); the loss is the
next-token cross-entropy over the completion tokens only (the prompt is context, not a target), so
every step teaches verdicts, critiques, revisions and summaries rather than the prompt's boilerplate.
Each step draws a fresh batch of examples from the training split; whole answer families and some
phrasings and catalog entries are held out (:class:`~ouro_ray.world_judge.answers.Split`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ouro_ray.config.world import JudgeModelConfig
from ouro_ray.world.pretrain import IGNORE_INDEX, build_model, core_count, cpu_has_bf16, train_steps
from ouro_ray.world.tokenizer import train_tokenizer
from ouro_ray.world_judge.answers import Split
from ouro_ray.world_judge.examples import Example, make_examples

_BF16 = cpu_has_bf16()

JUDGE_SEED_OFFSET = 7919
"""The judge's streams are derived from the world seed plus this, so judge and policy never share one."""


def encode_example(tokenizer, ex: Example, max_len: int) -> tuple[list[int], int] | None:
    """``(token ids, number of prompt tokens)``; None when the example does not fit ``max_len``."""
    if ex.chat:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                                 add_generation_prompt=True)
        prompt = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        completion = tokenizer(ex.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    else:
        prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        completion = tokenizer(ex.completion, add_special_tokens=False)["input_ids"]
    ids = prompt + completion
    return (ids, len(prompt)) if len(ids) <= max_len else None


def collate(encoded: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels only on the completion tokens."""
    longest = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), longest), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(encoded), longest), dtype=torch.long)  # (B, T)
    labels = torch.full((len(encoded), longest), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    for row, (ids, n_prompt) in enumerate(encoded):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        labels[row, n_prompt:len(ids)] = torch.tensor(ids[n_prompt:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def completion_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy on the completion tokens, the output head applied only there.

    Equal to the model's own loss with these labels; most examples end in a one-token verdict after ~200
    prompt tokens, so projecting every position onto the vocabulary (``(B, T, V)`` logits) would spend
    about a sixth of each step on logits no label reads. Matrix products run in bfloat16 where the CPU
    has native bf16 (:func:`~ouro_ray.world.pretrain.cpu_has_bf16`; weights and optimizer stay fp32)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_BF16):
        hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        targets = batch["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
        keep = targets != IGNORE_INDEX
        logits = model.lm_head(hidden[:, :-1][keep])  # (N, V), N completion tokens in the batch
    return F.cross_entropy(logits.float(), targets[keep])


def train_judge(model_dir: Path, cfg: JudgeModelConfig, corpus, seed: int, progress: Callable[[str], None],
                save: Callable[..., None]) -> dict:
    """Train the judge and save it (model and tokenizer) into ``model_dir``; return the manifest's part."""
    start = time.perf_counter()
    jseed = seed + JUDGE_SEED_OFFSET
    n_train = cfg.steps * cfg.batch_size
    examples = make_examples(n_train, jseed, Split(held_out=False), (corpus.dialogs, corpus.summaries))
    texts = [ex.prompt + ex.completion for ex in examples[:4000]] + [t["text"] for d in corpus.dialogs for t in d["turns"]]
    tokenizer = train_tokenizer(texts, cfg.model.vocab_size, cfg.model.max_seq_len)
    encoded = [e for e in (encode_example(tokenizer, ex, cfg.model.max_seq_len) for ex in examples) if e is not None]
    if len(encoded) < len(examples):
        progress(f"judge: {len(examples) - len(encoded)} examples longer than {cfg.model.max_seq_len} tokens left out")
    model = build_model(cfg.model, tokenizer, jseed)
    n_params = sum(p.numel() for p in model.parameters())
    progress(f"judge: {len(encoded)} training examples, tokenizer {len(tokenizer)} tokens, {cfg.model.arch} "
             f"{n_params / 1e6:.2f}M parameters, {cfg.steps} steps")
    previous = torch.get_num_threads()
    torch.set_num_threads(core_count())
    try:
        losses = _train(model, encoded, cfg, tokenizer.pad_token_id, jseed, progress)
    finally:
        torch.set_num_threads(previous)
    model.eval()
    save(model, tokenizer, model_dir)
    return {"n_params": n_params, "examples": len(encoded), "train_losses": losses,
            "seconds": round(time.perf_counter() - start, 2)}


def _train(model, encoded, cfg: JudgeModelConfig, pad_id: int, seed: int, progress) -> list[list[float]]:
    """One pass over the shuffled examples, ``cfg.batch_size`` a step (wrapping around when the steps need more).

    Batches mix the tasks on purpose: grouping examples by length would group them by task (verdicts,
    pairs and revisions differ in length), which trained a clearly worse judge here."""
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)

    def batch(step: int) -> dict[str, torch.Tensor]:
        start = (step - 1) * cfg.batch_size
        return collate([encoded[order[(start + k) % len(order)]] for k in range(cfg.batch_size)], pad_id)

    logged = train_steps(model, batch, cfg, lambda step, mean, lr, seconds: progress(
        f"judge: step {step}/{cfg.steps} loss {mean:.3f} ({seconds:.0f} s)"), completion_loss)
    return [[step, round(loss, 4)] for step, loss in logged]
