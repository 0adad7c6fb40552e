"""LLM-as-judge on a local model: the rubric score as an expectation over the score tokens.

For each (item, dimension) the judge builds :func:`~ouro_ray.judges.rubric.judge_prompt`, runs one
forward pass, and reads the next-token distribution at the end of ``Score (1-5):``. Every vocabulary
entry that decodes to a bare digit 1..5 (``"3"`` and ``" 3"`` alike) counts for that digit; their
probabilities are summed (logsumexp) and :func:`~ouro_ray.judges.rubric.expected_score` maps the
expectation to [-1, 1]. There is nothing to parse, so the judge never fails to produce a score.
Pairwise mode reads the tokens ``1`` and ``2`` after :func:`~ouro_ray.judges.rubric.pairwise_prompt`.
"""

from __future__ import annotations

import inspect
from typing import Callable, Mapping, Sequence

import torch

from ouro_ray.judges.protocol import JudgeItem, JudgeScore
from ouro_ray.judges.rubric import (
    DIMENSIONS,
    SCORE_TOKENS,
    DimensionScores,
    contradiction_prompt,
    expected_score,
    judge_prompt,
    pairwise_prompt,
    preference_probability,
)


def digit_token_ids(tokenizer, digits: Sequence[str] = SCORE_TOKENS) -> dict[str, list[int]]:
    """Vocabulary ids whose decoded text, stripped, is each digit (e.g. '3' and ' 3')."""
    found: dict[str, list[int]] = {d: [] for d in digits}
    special = set(tokenizer.all_special_ids)
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id]).strip()
        if text in found:
            found[text].append(token_id)
    missing = [d for d, ids in found.items() if not ids]
    if missing:
        raise ValueError(f"the judge's tokenizer has no token for {missing}; an LLM judge needs single-token digits "
                         "1..5: pick a judge model whose vocabulary has them")
    return found


class LLMJudge:
    """A ``Judge`` and ``PairwiseJudge`` over an HF causal LM (frozen, eval mode) and its tokenizer.

    A prompt longer than the judge's context is never fed through: the quoted answer is shortened
    (never the rubric) and counted in :attr:`stats` (``shortened``); when even an empty answer would
    not fit, the call fails naming the item.
    """

    rater = "ai"

    def __init__(self, model: torch.nn.Module, tokenizer, *, dimensions: Sequence[str] = ("helpful", "honest", "persona"),
                 name: str = "llm-judge", batch_size: int = 8, questions: Mapping[str, str] = DIMENSIONS,
                 context: int | None = None):
        unknown = [d for d in dimensions if d not in questions]
        if unknown:
            raise ValueError(f"judge dimensions {unknown} are not in the rubric; valid: {', '.join(questions)}")
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size}: must be >= 1")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.dimensions, self.questions, self.batch_size = tuple(dimensions), dict(questions), batch_size
        self.digit_ids = digit_token_ids(tokenizer)
        self.context = context or context_length(model, tokenizer)
        self.stats = {"prompts": 0, "shortened": 0}
        self._keeps_last = "logits_to_keep" in inspect.signature(model.forward).parameters

    def take_stats(self) -> dict[str, int]:
        """Counts since the last call (judge prompts read, answers shortened to fit the context), then reset."""
        out, self.stats = self.stats, {k: 0 for k in self.stats}
        return out

    def _length(self, prompt: str) -> int:
        return len(self.tokenizer(prompt)["input_ids"])

    def fit(self, build: Callable[[tuple[str, ...]], str], texts: tuple[str, ...], what: str) -> str:
        """``build(texts)``, with the longest quoted text cut (and marked) until the prompt fits the context."""
        self.stats["prompts"] += 1
        prompt = build(texts)
        over = self._length(prompt) - self.context
        if over <= 0:
            return prompt
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        while over > 0:
            k = max(range(len(ids)), key=lambda i: len(ids[i]))
            if not ids[k]:
                raise ValueError(f"the judge prompt for {what} needs {self.context + over} tokens even with the "
                                 f"answer left out, but the judge's context is {self.context}; fix: a judge model "
                                 "with a longer context, or shorter requests and targets")
            ids[k] = ids[k][:max(0, len(ids[k]) - over - 2)]
            texts = tuple(self.tokenizer.decode(x).strip() + " [cut]" if x else "[cut]" for x in ids)
            prompt = build(texts)
            over = self._length(prompt) - self.context
        self.stats["shortened"] += 1
        return prompt

    @torch.no_grad()
    def digit_logprobs(self, prompts: Sequence[str], digits: Sequence[str]) -> list[dict[str, float]]:
        """Per prompt, log P(digit) of the next token, summed over the digit's token ids (left-padded batches;
        only the digits' columns are kept, never a vocabulary-sized row per prompt)."""
        device = next(self.model.parameters()).device
        out: list[dict[str, float]] = []
        for start in range(0, len(prompts), self.batch_size):
            enc = self.tokenizer(list(prompts[start:start + self.batch_size]), return_tensors="pt", padding=True,
                                 padding_side="left")
            mask = enc["attention_mask"].to(device)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            keep = {"logits_to_keep": 1} if self._keeps_last else {}  # no (b, T, V) logits when the model can
            logits = self.model(input_ids=enc["input_ids"].to(device), attention_mask=mask, position_ids=positions,
                                **keep).logits
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (b, V) at the last real token
            cols = {d: torch.logsumexp(logp[:, self.digit_ids[d]], dim=-1).cpu() for d in digits}  # (b,) each
            out += [{d: float(cols[d][i]) for d in digits} for i in range(logp.shape[0])]
        return out

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        prompts = [self.fit(lambda t, it=it, d=d: judge_prompt(it, d, self.questions[d], t[0]), (it.candidate,),
                            f"candidate {it.candidate_id!r} of prompt {it.prompt_id!r}")
                   for it in items for d in self.dimensions]
        per_prompt = self.digit_logprobs(prompts, SCORE_TOKENS)
        k = len(self.dimensions)
        out = []
        for i, item in enumerate(items):
            dims = DimensionScores({d: expected_score(per_prompt[i * k + j]) for j, d in enumerate(self.dimensions)})
            out.append(JudgeScore(item.prompt_id, item.candidate_id, self.rater, self.name, dict(dims.scores),
                                  dims.reward))
        return out

    def prefer(self, first: Sequence[JudgeItem], second: Sequence[JudgeItem]) -> list[float]:
        if len(first) != len(second):
            raise ValueError(f"prefer: {len(first)} first items but {len(second)} second items; pass pairs")
        prompts = [self.fit(lambda t, a=a, b=b: pairwise_prompt(a, b, self.dimensions, t), (a.candidate, b.candidate),
                            f"the pair ({a.candidate_id!r}, {b.candidate_id!r}) of prompt {a.prompt_id!r}")
                   for a, b in zip(first, second)]
        return [preference_probability(r) for r in self.digit_logprobs(prompts, ("1", "2"))]

    def contradicts(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For answers to one question, whether they contradict each other (P('1' = yes) > 0.5)."""
        prompts = [self.fit(lambda t: contradiction_prompt(*t), (a, b), f"contradiction pair {i}")
                   for i, (a, b) in enumerate(pairs)]
        return [preference_probability(r) > 0.5 for r in self.digit_logprobs(prompts, ("1", "2"))]


def context_length(model: torch.nn.Module, tokenizer) -> int:
    """The longest prompt the judge model reads: its position limit, or the tokenizer's when that is smaller."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 2048
    declared = getattr(tokenizer, "model_max_length", None)
    return int(min(limit, declared)) if declared and declared < 10**7 else int(limit)
