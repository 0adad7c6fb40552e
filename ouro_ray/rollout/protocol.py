"""The seam between the rollout role and its generation engines (transformers, vLLM).

A backend turns tokenized prompts into ``n`` candidates each and reports, for every candidate token,
its log-probability under the model's own distribution (raw logits, before temperature / top-p /
top-k), which is what PPO's ``old_logprobs`` and the reference comparison need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ouro_ray.config.roles import SamplingConfig
    from ouro_ray.weights import WeightPayload


@dataclass
class GeneratedCandidate:
    """One candidate: its tokens (EOS included when generated), per-token logprobs and decoded text."""

    prompt_index: int
    token_ids: np.ndarray
    """(T_i,) int32."""
    logprobs: np.ndarray
    """(T_i,) float32, log p(token | prompt, earlier tokens) under the raw model distribution."""
    text: str


@runtime_checkable
class GenerationBackend(Protocol):
    """An engine that generates candidates and takes new weights."""

    name: str

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingConfig,
                 seed: int) -> list[GeneratedCandidate]:
        """``sampling.n`` candidates per prompt, prompt-major: prompt 0's n, then prompt 1's, …"""
        ...

    def load_payload(self, payload: "WeightPayload") -> None:
        """Take a published version: full weights in place, or a LoRA adapter (attached on first use)."""
        ...
