"""The seam between the rollout role and its generation engines (transformers, vLLM).

A backend turns tokenized prompts into ``n`` candidates each and reports, for every candidate token,
its log-probability under the model's own distribution (raw logits, before temperature / top-p /
top-k), which is what PPO's ``old_logprobs`` and the reference comparison need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

from ouro_ray.config.fields import param

if TYPE_CHECKING:
    from ouro_ray.weights import WeightPayload


@dataclass(frozen=True)
class SamplingConfig:
    """How candidates are drawn (stage 4, Regenerate)."""

    n: int = param(4, "candidates per prompt", ge=1)
    temperature: float = param(1.0, "softmax temperature; 0 means greedy", ge=0.0)
    top_p: float = param(1.0, "nucleus sampling: keep the smallest token set with this much probability", gt=0.0, le=1.0)
    top_k: int = param(0, "keep only the k most likely tokens (0: no limit)", ge=0)
    max_new_tokens: int = param(64, "longest candidate in tokens (generation also stops at EOS)", ge=1)
    num_beams: int = param(1, "beam search width (1: sampling); with beams, n <= num_beams", ge=1)

    def checks(self) -> list[tuple[str, str]]:
        """Cross-field problems (keys as in the run config, where this section is ``rollout.sampling``)."""
        key = "rollout.sampling"
        problems = []
        if self.num_beams > 1 and self.n > self.num_beams:
            problems.append((f"{key}.n", f"{key}.n = {self.n}: beam search returns at most num_beams = "
                             f"{self.num_beams} candidates; fix: set n <= num_beams"))
        if self.num_beams > 1 and self.temperature not in (0.0, 1.0):
            problems.append((f"{key}.temperature", f"{key}.temperature = {self.temperature}: beam search is "
                             "deterministic here; fix: leave temperature at 1.0 (or 0)"))
        return problems


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
