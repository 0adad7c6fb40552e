"""Generation with ``transformers``: batched ``generate`` with KV cache, left padding, stop at EOS.

Runs on CPU and GPU. The per-token logprobs are recomputed with one forward pass over prompt +
candidate (:func:`ouro_ray.models.response_logprobs`) instead of read from the sampler's scores:
that works the same for sampling and beam search, and gives exactly the numbers the reference and
the learner compute for the same weights.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ouro_ray.config.roles import SamplingConfig
from ouro_ray.models.logprobs import response_logprobs_batched
from ouro_ray.rollout.protocol import GeneratedCandidate
from ouro_ray.weights import WeightPayload, apply_weights


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) ids and bool mask, each row right-aligned."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):  # B small Python lists from the tokenizer; the token columns go through pad_lists
        if row:
            ids[i, width - len(row):] = torch.as_tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = True
    return ids, mask


def trim_at_eos(generated: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """(B, T) bool mask of each row's candidate: tokens up to and including the first EOS."""
    is_eos = torch.isin(generated, torch.as_tensor(list(eos_ids), dtype=generated.dtype))  # (B, T)
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # True strictly after the first EOS
    return ~after_eos


class TransformersBackend:
    """A ``GenerationBackend`` over an HF causal LM (``model`` in eval mode) and its tokenizer."""

    name = "transformers"

    def __init__(self, model: torch.nn.Module, tokenizer, *, logprob_batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.logprob_batch_size = logprob_batch_size
        eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if not self.eos_ids:
            raise ValueError("the model has no eos token id; set generation_config.eos_token_id in its directory")

    def _generate_kwargs(self, sampling: SamplingConfig) -> dict:
        kwargs = dict(max_new_tokens=sampling.max_new_tokens, num_return_sequences=sampling.n,
                      eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id, use_cache=True)
        if sampling.num_beams > 1:
            return kwargs | dict(num_beams=sampling.num_beams, do_sample=False, early_stopping=True)
        if sampling.temperature == 0.0:
            return kwargs | dict(do_sample=False, num_beams=1)
        return kwargs | dict(do_sample=True, num_beams=1, temperature=sampling.temperature, top_p=sampling.top_p,
                             top_k=sampling.top_k or None)

    @torch.no_grad()
    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingConfig,
                 seed: int) -> list[GeneratedCandidate]:
        if not prompt_token_ids:
            return []
        device = next(self.model.parameters()).device
        prompt_ids, prompt_mask = left_pad(prompt_token_ids, self.tokenizer.pad_token_id)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            sequences = self.model.generate(
                input_ids=prompt_ids.to(device), attention_mask=prompt_mask.long().to(device),
                **self._generate_kwargs(sampling),
            ).cpu()  # (B*n, P+T), prompt-major
        generated = sequences[:, prompt_ids.shape[1]:]  # (B*n, T)
        response_mask = trim_at_eos(generated, self.eos_ids)
        generated = generated.masked_fill(~response_mask, self.tokenizer.pad_token_id)
        rep_ids = prompt_ids.repeat_interleave(sampling.n, dim=0)  # (B*n, P)
        rep_mask = prompt_mask.repeat_interleave(sampling.n, dim=0)
        logprobs = response_logprobs_batched(self.model, rep_ids.to(device), rep_mask.to(device), generated.to(device),
                                             response_mask.to(device), self.logprob_batch_size).cpu()
        return self._candidates(generated, response_mask, logprobs, sampling.n)

    def _candidates(self, generated, response_mask, logprobs, n) -> list[GeneratedCandidate]:
        lengths = response_mask.sum(dim=1).tolist()
        token_rows = [generated[i, :k].numpy().astype(np.int32) for i, k in enumerate(lengths)]
        texts = self.tokenizer.batch_decode([r.tolist() for r in token_rows], skip_special_tokens=True)
        return [
            GeneratedCandidate(i // n, token_rows[i], logprobs[i, :k].numpy().astype(np.float32), texts[i].strip())
            for i, k in enumerate(lengths)
        ]

    def load_payload(self, payload: WeightPayload) -> None:
        self.model = apply_weights(self.model, payload)
        self.model.eval()
