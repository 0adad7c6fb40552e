"""What ``ouro serve`` keeps of each generation step: the top-K logprobs and the chosen token's, and a deadline.

Why not ``generate(output_logits=True)``: that keeps every step's full logits, a (T, S, V) float32
tensor (512 steps × 256 sequences × a 50k vocabulary is 26 GB), for answers that show at most
K = 20 alternatives. :class:`TopLogprobs` is a logits processor that reads each step's logits as
``generate`` hands them over and keeps only (S, K) of them; the one (S, V) row it holds is the last
step's, until the next step shows which token was sampled from it.

The logits it reads are the raw distribution: ``generate`` runs the processors it is given before its
sampling warpers (temperature, top-p), and the engine turns off the ones a model's generation config
commonly adds before them (repetition penalty, n-gram blocking, a minimum length). A config with hard
constraints (bad words, suppressed or forced tokens) would have them applied first, to these logprobs
as to sampling (the tiny world's model sets none).
Notation: ``S`` sequences, ``T`` generated steps, ``V`` vocab, ``K`` top-K.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers.generation import LogitsProcessor, StoppingCriteria


@dataclass(frozen=True)
class TokenLogprobs:
    """One sequence's logprobs: each token's, and the top-K (token id, logprob) per step, descending."""

    chosen: list[float]
    """(T,) the generated token's logprob at each step."""
    top: list[list[tuple[int, float]]]
    """(T, K) the K most likely tokens at each step; empty lists when K = 0."""

    def first(self, length: int) -> "TokenLogprobs":
        """The logprobs of the first ``length`` tokens (those a choice keeps once cut at EOS or a stop string)."""
        return TokenLogprobs(self.chosen[:length], self.top[:length])


class TopLogprobs(LogitsProcessor):
    """A logits processor that records, per step, the raw top-``k`` logprobs and the sampled token's logprob.

    It changes no score. Call :meth:`finish` with the generated ids once ``generate`` returns.
    """

    def __init__(self, k: int):
        self.k = k
        self._values: list[torch.Tensor] = []  # each (S, K)
        self._indices: list[torch.Tensor] = []  # each (S, K)
        self._chosen: list[torch.Tensor] = []  # each (S,)
        self._last: torch.Tensor | None = None  # (S, V) the previous step's logprobs, until its token is known

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._last is not None:  # input_ids now end with the token sampled from the previous step
            self._take_chosen(input_ids[:, -1])
        logprobs = torch.log_softmax(scores.float(), dim=-1)  # (S, V)
        if self.k:
            values, indices = logprobs.topk(self.k, dim=-1)  # (S, K) each
            self._values.append(values)
            self._indices.append(indices)
        self._last = logprobs
        return scores

    def _take_chosen(self, tokens: torch.Tensor) -> None:
        self._chosen.append(self._last.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1))  # (S,)
        self._last = None

    def finish(self, generated: torch.Tensor) -> list[TokenLogprobs]:
        """Each sequence's logprobs over all its steps, given the (S, T) ``generated`` ids."""
        if self._last is not None:
            self._take_chosen(generated[:, -1].to(self._last.device))
        sequences, steps = generated.shape
        if len(self._chosen) != steps:
            raise RuntimeError(f"recorded {len(self._chosen)} logprob steps for {steps} generated tokens; "
                               "was this processor used for more than one generate call?")
        if not steps:
            return [TokenLogprobs([], []) for _ in range(sequences)]
        chosen = torch.stack(self._chosen, dim=1).tolist()  # (S, T)
        if not self.k:
            return [TokenLogprobs(row, [[] for _ in row]) for row in chosen]
        values = torch.stack(self._values, dim=1).tolist()  # (S, T, K)
        indices = torch.stack(self._indices, dim=1).tolist()  # (S, T, K)
        return [TokenLogprobs(c, [list(zip(i, v)) for i, v in zip(rows_i, rows_v)])
                for c, rows_i, rows_v in zip(chosen, indices, values)]


class Deadline(StoppingCriteria):
    """Stops ``generate`` once ``time.monotonic()`` passes ``deadline``; :attr:`passed` says whether it did."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.passed = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.passed = self.passed or time.monotonic() >= self.deadline
        return torch.full((input_ids.shape[0],), self.passed, dtype=torch.bool, device=input_ids.device)
