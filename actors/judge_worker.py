"""The judge role: every configured teacher over a ``judge_items`` batch, as one worker.

``JudgeWorker`` is a plain class (constructed in a test, in the driver, or as a Ray Serve replica by
:mod:`actors.judge`). It builds the judges from config — rule checkers, the local LLM judge, the
HTTP judge, the constitution — or takes ready-made ``Judge`` objects, and returns one ``scores`` row
per (candidate, teacher) plus the constitution's preference pairs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from actors.rollout import producer_of, stamp
from ouro_ray.config.judges import JudgesConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.validate import validate_batch
from ouro_ray.judges.items import items_from_table, scores_table
from ouro_ray.judges.protocol import Judge


@dataclass
class JudgeOutput:
    """Verdicts (a ``scores`` table) and preference pairs (a ``pairs`` table) for one batch."""

    scores: pa.Table
    pairs: pa.Table
    stats: dict[str, int] = field(default_factory=dict)
    """Counts of the batch: ``judge_prompts`` read by the LLM judge, ``judge_shortened`` (answers cut to fit
    the judge's context), ``constitution_revised`` (candidates that went through critique → revise),
    ``http_readings`` and ``http_unreadable`` (the HTTP judge's verdicts asked for and those it could not read)."""

    @staticmethod
    def merge(parts: Sequence["JudgeOutput"]) -> "JudgeOutput":
        scores = [p.scores for p in parts] or [SHARDS["scores"].schema.empty_table()]
        pairs = [p.pairs for p in parts] or [SHARDS["pairs"].schema.empty_table()]
        stats: dict[str, int] = {}
        for part in parts:
            for key, value in part.stats.items():
                stats[key] = stats.get(key, 0) + value
        return JudgeOutput(pa.concat_tables(scores), pa.concat_tables(pairs), stats)


def build_judges(cfg: JudgesConfig, model_dir: str | None) -> tuple[list[Judge], Any]:
    """The configured judges, and the constitution judge (or None) which also yields pairs."""
    from ouro_ray.judges.rules import make_rule

    judges: list[Judge] = [make_rule(name) for name in cfg.rules]
    llm = None
    if cfg.llm.enabled:
        llm = _llm_judge(cfg, model_dir)
        if cfg.llm.dimensions:  # none: the model only writes (the constitution's critiques and revisions)
            judges.append(llm)
    if cfg.http.base_url:
        from ouro_ray.judges.http import HTTPJudge

        h = cfg.http
        judges.append(HTTPJudge(h.base_url, h.model, dimensions=h.dimensions, api_key=h.key_source, timeout_s=h.timeout_s,
                                max_retries=h.max_retries, max_in_flight=h.max_in_flight,
                                top_logprobs=h.top_logprobs, batch_size=h.batch_size, api=h.api))
    if cfg.reward_model.path:
        judges.append(_reward_model_judge(cfg, model_dir))
    constitution = _constitution(cfg, llm, judges[:len(cfg.rules)]) if cfg.constitution.enabled else None
    return judges, constitution


def _reward_model_judge(cfg: JudgesConfig, model_dir: str | None):
    """The trained reward model as a teacher: it scores text with its own tokenizer (any vocabulary)."""
    from actors.reward import RewardWorker
    from ouro_ray.config.roles import RewardModelConfig
    from ouro_ray.judges.reward_model import RewardModelJudge

    rm = cfg.reward_model
    scorer = RewardWorker(model_dir or rm.path, RewardModelConfig(path=rm.path, dtype=rm.dtype), name="judge-rm")
    if scorer.new_head:
        raise ValueError(f"judges.reward_model.path = {rm.path!r} has no trained reward head (a plain causal LM); "
                         "fix: point it at `ouro train rm`'s output directory")
    return RewardModelJudge(scorer, scale=rm.scale)


def _llm_judge(cfg: JudgesConfig, model_dir: str | None):
    from ouro_ray.judges.llm import LLMJudge
    from ouro_ray.models.device import pick_device
    from ouro_ray.models.load import load_causal_lm
    from ouro_ray.models.resolve import resolve_model
    from ouro_ray.world_judge.choice import AUTO, sibling_judge

    if cfg.llm.model == "policy":
        if model_dir is None:
            raise ValueError("judges.llm.model = 'policy' but no policy model directory was given to the judges")
        path = model_dir
    elif cfg.llm.model == AUTO:  # commands resolve 'auto' up front; a worker handed a world's policy finds it too
        judge = sibling_judge(model_dir)
        if judge is None:
            raise ValueError(f"judges.llm.model = 'auto' names no judge for the policy {model_dir!r} (only a tiny "
                             "world has one beside its model); fix: set judges.llm.model to a judge model directory")
        path = str(judge)
    else:
        path = str(resolve_model(cfg.llm.model, key="judges.llm.model").model_dir)
    model, tokenizer = load_causal_lm(path, dtype=cfg.llm.dtype, device=pick_device())
    return LLMJudge(model, tokenizer, dimensions=cfg.llm.dimensions, batch_size=cfg.llm.batch_size)


def _constitution(cfg: JudgesConfig, llm, rules: Sequence[Judge]):
    """The constitution: the LLM judge's model writes critiques and revisions; ``judges.constitution.ranker`` ranks."""
    from ouro_ray.judges.constitution import ConstitutionJudge, LocalWriter, RuleRanker
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    c = cfg.constitution
    writer = LocalWriter(TransformersBackend(llm.model, llm.tokenizer), llm.tokenizer, c.max_new_tokens)
    ranker = llm if c.ranker == "llm" else RuleRanker(rules)
    return ConstitutionJudge(writer, ranker, principles=c.principles, critique_chain=c.critique_chain,
                             min_margin=c.min_margin, revision_prefix=c.revision_prefix, pairs=c.pairs)


class JudgeWorker:
    """Scores ``judge_items`` batches with every configured teacher."""

    def __init__(self, cfg: JudgesConfig, model_dir: str | None = None, judges: Sequence[Judge] | None = None,
                 *, name: str = "judge/local"):
        self.cfg, self.name = cfg, name
        # A Serve replica answers several requests at once on threads; a Hugging Face tokenizer is not
        # thread-safe (padding is state on the shared backend), so model work runs one call at a time.
        self._lock = threading.RLock()
        if judges is not None:
            self.judges, self.constitution = list(judges), None
        else:
            self.judges, self.constitution = build_judges(cfg, model_dir)

    def score(self, items: pa.Table, revise: bool = True) -> JudgeOutput:
        """One ``scores`` row per (candidate, teacher), teachers in config order; pairs from the constitution.
        ``revise=False`` (held-out scoring): the constitution rates its candidates as they are and writes no
        critique or revision (they would be thrown away: held-out answers train nothing)."""
        with self._lock:
            return self._score(items, revise)

    def _score(self, items: pa.Table, revise: bool = True) -> JudgeOutput:
        validate_batch(items, "judge_items", producer_of(items))
        judge_items = items_from_table(items)
        verdicts = [s for judge in self.judges for s in judge.score(judge_items)]
        pairs = SHARDS["pairs"].schema.empty_table()
        chosen = self._constitution_items(judge_items)
        if chosen and not revise:
            verdicts += self.constitution.rate(chosen)
            self._revised = 0
        elif chosen:
            result = self.constitution.run(chosen)
            verdicts += result.scores
            if result.pairs:
                pairs = pa.Table.from_pylist(result.pairs, schema=SHARDS["pairs"].schema)
        producer = f"ouro/{self.name}"
        return JudgeOutput(stamp(scores_table(verdicts), producer), stamp(pairs, producer), self._stats())

    def _constitution_items(self, items: list) -> list:
        """The items critiqued and revised: all, or each prompt's candidates ``c0`` … ``c<per_prompt - 1>``."""
        self._revised = 0
        if self.constitution is None:
            return []
        limit, seen, chosen = self.cfg.constitution.per_prompt, {}, []
        for item in items:  # the rollout's ids are c0, c1, …: the index decides, whatever the chunking
            index = re.fullmatch(r"c(\d+)", item.candidate_id)
            seen[item.prompt_id] = seen.get(item.prompt_id, 0) + 1
            k = int(index.group(1)) if index else seen[item.prompt_id] - 1
            if not limit or k < limit:
                chosen.append(item)
        self._revised = len(chosen)
        return chosen

    def _stats(self) -> dict[str, int]:
        """The LLM judge's counts for the batch just scored (prompts read, answers shortened to fit)."""
        from ouro_ray.judges.http import HTTPJudge
        from ouro_ray.judges.llm import LLMJudge

        stats = {"constitution_revised": self._revised}
        for judge in self.judges:
            if isinstance(judge, LLMJudge):
                counts = judge.take_stats()
                stats["judge_prompts"] = stats.get("judge_prompts", 0) + counts["prompts"]
                stats["judge_shortened"] = stats.get("judge_shortened", 0) + counts["shortened"]
            if isinstance(judge, HTTPJudge):  # its verdicts read and those it could not read
                counts = judge.take_stats()
                stats["http_readings"] = stats.get("http_readings", 0) + counts["readings"]
                stats["http_unreadable"] = stats.get("http_unreadable", 0) + counts["unparsed"]
        return stats

    def complete(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy completions by this worker's LLM judge model: the AI summariser of stage 2."""
        from ouro_ray.judges.constitution import LocalWriter
        from ouro_ray.judges.llm import LLMJudge

        llm = next((j for j in self.judges if isinstance(j, LLMJudge)), None)
        writer = getattr(self.constitution, "writer", None)  # a writer-only judge model (judges.llm.dimensions: [])
        if llm is None and not isinstance(writer, LocalWriter):
            raise ValueError("the AI summariser runs on the judge workers' LLM judge, and none is configured; fix: set "
                             "judges.llm.enabled=true, or distill.use_ai=false (rule extraction only)")
        if getattr(self, "_writer", None) is None or self._writer.sampling.max_new_tokens != max_new_tokens:
            from ouro_ray.rollout.transformers_backend import TransformersBackend

            model, tokenizer = (llm.model, llm.tokenizer) if llm is not None else (writer.backend.model,
                                                                                    writer.tokenizer)
            self._writer = LocalWriter(TransformersBackend(model, tokenizer), tokenizer, max_new_tokens)
        with self._lock:
            return self._writer.complete(prompts)

    def pairwise_judges(self) -> list[str]:
        """Names of the teachers that compare two answers (``prefer``): the LLM and HTTP judges."""
        return [j.name for j in self.judges if hasattr(j, "prefer")]

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]:
        """P(first answer is better) per row pair of two ``judge_items`` tables, averaged over the pairwise judges."""
        judges = [j for j in self.judges if hasattr(j, "prefer")]
        if not judges:
            raise ValueError("no pairwise judge is configured; fix: enable judges.llm or set judges.http.base_url, "
                             "or compare by reward (evaluation.pairwise=reward)")
        a, b = items_from_table(first), items_from_table(second)
        with self._lock:
            votes = np.array([j.prefer(a, b) for j in judges], np.float64)  # (J, B)
        return votes.mean(axis=0).tolist()

    def contradicts(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether each pair of answers contradicts itself, by the LLM judge (empty list: none configured)."""
        from ouro_ray.judges.llm import LLMJudge

        llm = next((j for j in self.judges if isinstance(j, LLMJudge)), None)
        if llm is None:
            raise ValueError("the contradiction check needs the LLM judge; fix: set judges.llm.enabled=true")
        with self._lock:
            return llm.contradicts(list(pairs))

    def teachers(self) -> list[str]:
        return [j.name for j in self.judges] + ([self.constitution.name] if self.constitution else [])
