"""Coherence under paraphrase: one question asked several ways must get answers that agree.

A paraphrase group is the labyrinth's rephrasings and contrastive framings of one human request
(prompt ids ``<dialog>-q<i>-r<k>`` and ``<dialog>-q<i>-c<k>a/b``: the same ``<dialog>-q<i>`` stem
and the same target). Adversarial prompts are left out: they are meant to pull answers apart. For
each group and candidate index k, the k-th answers to the group's prompts are compared:

- fact-level agreement: for each fact of the target, every answer has the same status — kept (its
  content words present, as the facts rule reads it), omitted, or contradicted (the fact with
  another number, or negated);
- contradiction (rules): one answer keeps a fact another contradicts, or some answers refuse while
  others answer; an optional judge adds its own verdict per pair of answers (``contradicts``);
- invariant: every fact agrees and nothing contradicts. The invariance rate is the share of
  (group, k) units that are invariant.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from ouro_ray.eval.stats import bootstrap_ci
from ouro_ray.judges.text import content_words, contradicts, is_refusal

_STEM_RE = re.compile(r"^(?P<stem>.+-q\d+)-(?:r\d+|c\d+[ab])$")
KEEP_THRESHOLD = 0.8

ContradictionJudge = Callable[[Sequence[tuple[str, str]]], Sequence[bool]]
"""For pairs of answers to one question, whether they contradict each other."""


def paraphrase_groups(prompt_ids: Sequence[str]) -> dict[str, list[str]]:
    """``{stem: [prompt_id, …]}`` for stems with at least two rephrased or contrastive prompts."""
    groups: dict[str, list[str]] = defaultdict(list)
    for pid in prompt_ids:
        m = _STEM_RE.match(pid)
        if m:
            groups[m["stem"]].append(pid)
    return {stem: sorted(ids) for stem, ids in groups.items() if len(ids) >= 2}


def fact_status(answer: str, fact: str) -> str:
    """'contradicted', 'kept' or 'omitted'."""
    if contradicts(answer, fact, KEEP_THRESHOLD):
        return "contradicted"
    words = set(content_words(fact))
    present = set(content_words(answer))
    kept = words and sum(w in present for w in words) >= KEEP_THRESHOLD * len(words)
    return "kept" if kept else "omitted"


def compare_answers(answers: Sequence[str], facts: Sequence[str]) -> dict:
    """One unit's verdict: ``{"agreeing_facts", "facts", "contradiction", "reasons"}``."""
    reasons = []
    agreeing = 0
    for fact in facts:
        statuses = {fact_status(a, fact) for a in answers}
        agreeing += len(statuses) == 1
        if {"kept", "contradicted"} <= statuses:
            reasons.append(f"kept and contradicted: {fact[:40]!r}")
    refusals = {is_refusal(a) for a in answers}
    if len(refusals) == 2:
        reasons.append("some answers refuse, others answer")
    return {"agreeing_facts": agreeing, "facts": len(facts), "contradiction": bool(reasons), "reasons": reasons}


def coherence(items: pa.Table, *, judge: ContradictionJudge | None = None, n_boot: int = 1000,
              seed: int = 0) -> tuple[dict, list[dict]]:
    """``({"coherence": …, "fact_agreement": …}, units)`` for a model's judge items (one table).

    Each metric is ``{"value", "ci", "n"}``; ``units`` lists every (group, k) verdict for results.csv.
    """
    rows = items.select(["prompt_id", "candidate_id", "candidate", "target"]).to_pylist()
    answer = {(r["prompt_id"], r["candidate_id"]): r["candidate"] for r in rows}
    facts = {r["prompt_id"]: list(r["target"]["facts"] or []) for r in rows}
    candidate_ids = sorted({r["candidate_id"] for r in rows})
    units = []
    for stem, pids in paraphrase_groups(sorted(facts)).items():
        for cid in candidate_ids:
            answers = [answer[(p, cid)] for p in pids if (p, cid) in answer]
            if len(answers) < 2:
                continue
            verdict = compare_answers(answers, facts[pids[0]])
            units.append({"group": stem, "candidate_id": cid, "prompts": pids, "answers": answers, **verdict})
    if judge is not None and units:
        _add_judge_verdicts(units, judge)
    invariant = np.array([u["agreeing_facts"] == u["facts"] and not u["contradiction"] for u in units], np.float64)
    fact_units = [(u["group"], u["agreeing_facts"] / u["facts"]) for u in units if u["facts"]]
    out = {"coherence": _interval(invariant, [u["group"] for u in units], n_boot, seed),
           "fact_agreement": _interval(np.array([v for _, v in fact_units]), [g for g, _ in fact_units], n_boot, seed)}
    return out, units


def _add_judge_verdicts(units: list[dict], judge: ContradictionJudge) -> None:
    pairs, owner = [], []
    for i, u in enumerate(units):
        for a in range(len(u["answers"])):
            for b in range(a + 1, len(u["answers"])):
                pairs.append((u["answers"][a], u["answers"][b]))
                owner.append(i)
    verdicts = list(judge(pairs))
    if len(verdicts) != len(pairs):
        raise ValueError(f"the contradiction judge returned {len(verdicts)} verdicts for {len(pairs)} pairs")
    for i, flagged in zip(owner, verdicts):
        if flagged and "the judge found a contradiction" not in units[i]["reasons"]:
            units[i]["reasons"].append("the judge found a contradiction")
            units[i]["contradiction"] = True


def _interval(values: np.ndarray, groups: list[str], n_boot: int, seed: int) -> dict:
    if len(values) == 0:
        return {"value": None, "ci": None, "n": 0}
    lo, hi = bootstrap_ci(values, groups=groups, n_boot=n_boot, seed=seed)
    return {"value": float(values.mean()), "ci": [lo, hi], "n": len(values)}
