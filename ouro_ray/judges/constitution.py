"""Constitutional critique → revise (Bai et al. 2022, "Constitutional AI", §3), as a judge.

For each candidate, ``critique_chain`` passes run in order; pass k takes principle ``k mod P``:
the writer model critiques the current text against the principle, then revises it in light of the
critique. The chain's texts (the original and every revision) are then scored by the rubric judge;
the original's score is this judge's verdict, and when a revision beats the original by at least
``min_margin`` the pair (chosen = best revision, rejected = original) is emitted for DPO with source
``constitution`` (``pairs="improved"``). With ``pairs="ranked"`` the pair is the chain's best text over its worst,
whichever they are: a revision that made the answer worse (a prefilled refusal of a safe request) becomes a pair
with the original chosen, so the policy also learns what not to rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

from ouro_ray.config.judges import DEFAULT_PRINCIPLES
from ouro_ray.judges.protocol import Judge, JudgeItem, JudgeScore
from ouro_ray.judges.rubric import critique_prompt, revise_prompt

PAIRS = ("improved", "ranked")
"""``judges.constitution.pairs``: a revision over the original it improved, or the chain's best over its worst."""


class Writer(Protocol):
    """Completes chat prompts: the critic and reviser of the constitution. ``prefix`` (non-empty): every answer
    starts with it and the writer continues it (prefilling); the texts returned include it."""

    def complete(self, prompts: Sequence[str], prefix: str = "") -> list[str]:
        ...


class LocalWriter:
    """A :class:`Writer` over a transformers generation backend (greedy, chat template)."""

    def __init__(self, backend, tokenizer, max_new_tokens: int = 64):
        from ouro_ray.config.roles import SamplingConfig

        self.backend, self.tokenizer = backend, tokenizer
        self.sampling = SamplingConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    def complete(self, prompts: Sequence[str], prefix: str = "") -> list[str]:
        import torch

        from ouro_ray.models.load import encode_prompts

        ids = encode_prompts(self.tokenizer, prompts)
        if not prefix:
            with torch.no_grad():
                return [c.text for c in self.backend.generate(ids, self.sampling, seed=0)]
        start = list(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])  # the answer's first tokens
        with torch.no_grad():
            cands = self.backend.generate([p + start for p in ids], self.sampling, seed=0)
        # decoded with the prefix, so the tokenizer joins them as the model wrote them
        return [self.tokenizer.decode(start + list(c.token_ids), skip_special_tokens=True).strip() for c in cands]


class RuleRanker:
    """A :class:`Judge` that rates a text by the mean reward of the rule teachers (``judges.constitution.ranker =
    rules``): the constitution's ranker when the judge model writes revisions but cannot tell them apart."""

    name, rater = "rules", "rule"

    def __init__(self, rules: Sequence[Judge]):
        if not rules:
            raise ValueError("RuleRanker needs at least one rule teacher; fix: list judges.rules")
        self.rules = list(rules)

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        verdicts = [rule.score(items) for rule in self.rules]
        return [JudgeScore(item.prompt_id, item.candidate_id, self.rater, self.name, {},
                           sum(v[i].reward for v in verdicts) / len(verdicts))
                for i, item in enumerate(items)]


@dataclass
class ConstitutionResult:
    """The verdicts on the originals, the revision chains, and the preference pairs they yield."""

    scores: list[JudgeScore]
    chains: list[list[str]]
    pairs: list[dict] = field(default_factory=list)


class ConstitutionJudge:
    """A ``Judge`` that critiques and revises each candidate, then lets ``judge`` prefer the best text."""

    rater = "ai"

    def __init__(self, writer: Writer, judge: Judge, *, principles: Sequence[str] = DEFAULT_PRINCIPLES,
                 critique_chain: int = 1, min_margin: float = 0.05, revision_prefix: str = "",
                 pairs: str = "improved", name: str = "constitution"):
        if not principles:
            raise ValueError("constitution needs at least one principle; fix: list them under judges.constitution.principles")
        if critique_chain < 1:
            raise ValueError(f"critique_chain = {critique_chain}: must be >= 1 (passes of critique then revise)")
        if pairs not in PAIRS:
            raise ValueError(f"judges.constitution.pairs = {pairs!r}: use one of {', '.join(PAIRS)}")
        self.writer, self.judge, self.name = writer, judge, name
        self.principles, self.critique_chain, self.min_margin = tuple(principles), critique_chain, min_margin
        self.revision_prefix, self.pairs = revision_prefix, pairs

    def revise(self, items: Sequence[JudgeItem]) -> tuple[list[list[str]], list[str]]:
        """Each item's chain [original, revision 1, …] and its first critique (kept as the verdict's notes)."""
        chains = [[it.candidate] for it in items]
        first_critiques = [""] * len(items)
        for k in range(self.critique_chain):
            principle = self.principles[k % len(self.principles)]
            current = [c[-1] for c in chains]
            critiques = self.writer.complete([critique_prompt(it, t, principle) for it, t in zip(items, current)])
            asks = [revise_prompt(it, t, principle, c) for it, t, c in zip(items, current, critiques)]
            revised = (self.writer.complete(asks, prefix=self.revision_prefix) if self.revision_prefix
                       else self.writer.complete(asks))
            for chain, text in zip(chains, revised):
                chain.append(text)
            if k == 0:
                first_critiques = critiques
        return chains, first_critiques

    def _verdict(self, item: JudgeItem, reward: float, critique: str | None = None) -> JudgeScore:
        return JudgeScore(item.prompt_id, item.candidate_id, self.rater, self.name, {"constitution": reward}, reward,
                          notes=critique or None)

    def rate(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """The constitution's verdicts on ``items`` as they are (the ranker's reward of each), nothing written."""
        return [self._verdict(item, v.reward) for item, v in zip(items, self.judge.score(list(items)))]

    def run(self, items: Sequence[JudgeItem]) -> ConstitutionResult:
        chains, critiques = self.revise(items)
        flat = [replace(it, candidate=text, candidate_id=f"{it.candidate_id}/r{j}")
                for it, chain in zip(items, chains) for j, text in enumerate(chain)]
        verdicts = self.judge.score(flat)
        width = self.critique_chain + 1
        scores, pairs = [], []
        for i, item in enumerate(items):
            rewards = [v.reward for v in verdicts[i * width:(i + 1) * width]]
            best = max(range(width), key=rewards.__getitem__)
            scores.append(self._verdict(item, rewards[0], critiques[i]))
            worst = 0 if self.pairs == "improved" else min(range(width), key=rewards.__getitem__)
            if best != worst and rewards[best] - rewards[worst] >= self.min_margin and chains[i][best] != chains[i][worst]:
                pairs.append({"prompt_id": item.prompt_id, "prompt": item.prompt, "chosen": chains[i][best],
                              "rejected": chains[i][worst], "source": "constitution"})
        return ConstitutionResult(scores, chains, pairs)

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        return self.run(items).scores
