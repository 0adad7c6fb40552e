"""The learned reward model as a :class:`~ouro_ray.judges.protocol.Judge`, to mix with the other teachers.

A reward model's raw scalar is unbounded; every judge score lies in [-1, 1], so the adapter reports
``tanh(raw / scale)`` (``scale``: the raw value that maps to tanh(1) ≈ 0.76). It scores text, not
token ids: the scorer (``actors.reward.RewardWorker`` or ``RewardGroup``) tokenizes the prompt and the
candidate with the reward model's own tokenizer, so a reward model on another vocabulary than the
policy's works here too.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from ouro_ray.judges.protocol import JudgeItem, JudgeScore


class TextScorer(Protocol):
    """Anything that gives raw reward-model scalars for (prompt, candidate text) pairs."""

    def score_texts(self, prompts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """(B,) raw scalars, one per pair."""
        ...


class RewardModelJudge:
    """``rater='rm'``: ``scores = {'reward_model': tanh(raw / scale)}``, ``reward`` the same."""

    rater = "rm"

    def __init__(self, scorer: TextScorer, *, scale: float = 1.0, name: str = "reward-model"):
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale = {scale!r}: must be a finite number > 0 (the raw reward that maps to tanh(1))")
        self.scorer, self.scale, self.name = scorer, float(scale), name

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """One score per item, in order; the raw scalar is kept in ``notes``."""
        if not items:
            return []
        raw = np.asarray(self.scorer.score_texts([i.prompt for i in items], [i.candidate for i in items]), np.float64)
        if raw.shape != (len(items),):
            raise ValueError(f"the scorer returned shape {raw.shape} for {len(items)} items; it must give one value each")
        bounded = np.tanh(raw / self.scale)  # (B,) in [-1, 1]
        return [JudgeScore(item.prompt_id, item.candidate_id, self.rater, self.name, {"reward_model": float(b)},
                           float(b), f"raw reward {r:.6g}") for item, r, b in zip(items, raw, bounded)]
