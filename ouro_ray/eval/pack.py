"""The evaluator pack: models' answers on the same prompts → every figure with its interval.

    answers   = score_answers(name, candidates, prompts, judges, scoring)  each model, same prompts & seed
    metrics   = pointwise + coherence per model                           rewards, safety, persona, paraphrase
    pairwise  = compare(answers, baseline, judges, cfg)                   win rate, ELO, position bias
    stress    = reward_hacks(score_fn)                                    the scoring stack, attacked

The judges are the loop's judge group (Serve replicas on a cluster, or in process); ``ouro eval`` and
``ouro run``'s per-round measurement both go through :func:`model_metrics` and :func:`compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from ouro_ray.eval import coherence as coherence_mod
from ouro_ray.eval import metrics as metrics_mod
from ouro_ray.eval import pairwise
from ouro_ray.judges.items import judge_items
from ouro_ray.loop.scoring import combine

DEFINITIONS = {
    **metrics_mod.DEFINITIONS,
    "coherence": "share of paraphrase units (one question asked 2+ ways, same candidate index) whose answers "
                 "agree on every fact and do not contradict each other",
    "fact_agreement": "share of a paraphrase unit's facts on which every answer has the same status "
                      "(kept, omitted or contradicted)",
}


@dataclass(frozen=True)
class Answers:
    """One model's candidates on the evaluation prompts, judged: the tables every figure is computed from."""

    name: str
    candidates: pa.Table
    items: pa.Table
    scores: pa.Table
    rewards: pa.Table


def score_answers(name: str, candidates: pa.Table, prompts: pa.Table, judges: Any, scoring: Any,
                  human: pa.Table | None = None) -> Answers:
    """Every teacher's verdicts on ``candidates`` (human rows joined), combined with the loop's λ."""
    from ouro_ray.loop.scoring import human_rows

    items = judge_items(candidates, prompts)
    scores = judges.score(items).scores
    humans = human_rows(human, candidates)
    if humans is not None:
        scores = pa.concat_tables([scores, humans.cast(scores.schema)])
    return Answers(name, candidates, items, scores, combine(scores, scoring))


def contradiction_judge(judges: Any) -> Any:
    """The judge group's contradiction check when an LLM judge is on it, else None (rules alone)."""
    try:
        names = judges.pairwise_judges()
    except AttributeError:
        return None
    return judges.contradicts if "llm-judge" in names else None


def model_metrics(answers: Answers, *, judges: Any = None, n_boot: int = 1000, seed: int = 0) -> tuple[dict, list[dict]]:
    """``({metric: {"value", "ci", "n"}}, results.csv rows)`` of one model."""
    values = metrics_mod.per_candidate(answers.items, answers.scores, answers.rewards)
    out = metrics_mod.summarise(values, n_boot=n_boot, seed=seed)
    judge = contradiction_judge(judges) if judges is not None else None
    coherent, units = coherence_mod.coherence(answers.items, judge=judge, n_boot=n_boot, seed=seed)
    out.update(coherent)
    rows = metrics_mod.per_prompt_rows(answers.name, values)
    rows += [{"model": answers.name, "prompt_id": u["group"], "metric": "coherence",
              "value": float(u["agreeing_facts"] == u["facts"] and not u["contradiction"]), "n": len(u["answers"])}
             for u in units]
    return out, rows


def pairwise_mode(requested: str, judges: Any) -> str:
    """'judges' or 'reward' for ``evaluation.pairwise`` (auto: judges when one compares answers)."""
    if requested != "auto":
        return requested
    try:
        return "judges" if judges.pairwise_judges() else "reward"
    except AttributeError:
        return "reward"


def compare(answers: Sequence[Answers], baseline: str, *, judges: Any, mode: str, tie_margin: float,
            n_boot: int = 1000, seed: int = 0) -> dict:
    """The report's ``pairwise`` section: every pair of models on their shared (prompt, candidate) keys."""
    by_name = {a.name: a for a in answers}
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not among the models {sorted(by_name)}")
    keys = sorted(set.intersection(*(set(zip(a.candidates.column("prompt_id").to_pylist(),
                                               a.candidates.column("candidate_id").to_pylist())) for a in answers)))
    if not keys:
        raise ValueError("the models share no (prompt_id, candidate_id): generate every model's candidates on the "
                         "same prompts with the same evaluation.n")
    comps = pairwise.comparisons([a.name for a in answers], keys, seed)
    mode = pairwise_mode(mode, judges)
    if mode == "reward":
        rewards = {(a.name, p, c): r for a in answers for p, c, r in zip(
            *(a.rewards.column(k).to_pylist() for k in ("prompt_id", "candidate_id", "reward")))}
        winners, first_won, judge = pairwise.judge_by_reward(comps, rewards, tie_margin), None, "reward"
    else:
        winners, first_won = _judge_pairs(comps, by_name, judges, tie_margin)
        judge = "+".join(judges.pairwise_judges())
    return pairwise.summarise(comps, winners, first_won, baseline, judge=judge, n_boot=n_boot, seed=seed)


def _judge_pairs(comps, by_name: dict[str, Answers], judges: Any, tie_margin: float):
    """Winners by the judge group's pairwise judges: the items in shown order go out as two tables."""
    index = {name: {(p, c): i for i, (p, c) in enumerate(zip(a.items.column("prompt_id").to_pylist(),
                                                              a.items.column("candidate_id").to_pylist()))}
             for name, a in by_name.items()}
    first_rows, second_rows = [], []
    for c in comps:
        a_row = (c.model_a, index[c.model_a][(c.prompt_id, c.candidate_id)])
        b_row = (c.model_b, index[c.model_b][(c.prompt_id, c.candidate_id)])
        first_rows.append(a_row if c.a_first else b_row)
        second_rows.append(b_row if c.a_first else a_row)
    first, second = _gather(first_rows, by_name), _gather(second_rows, by_name)
    probabilities = judges.prefer(first, second)
    verdicts = [pairwise.winner_from_probability(float(p), c.a_first, tie_margin / 2)
                for p, c in zip(probabilities, comps)]
    return [w for w, _ in verdicts], [f for _, f in verdicts]


def _gather(rows: list[tuple[str, int]], by_name: dict[str, Answers]) -> pa.Table:
    parts = [by_name[name].items.slice(i, 1) for name, i in rows]
    return pa.concat_tables(parts) if parts else next(iter(by_name.values())).items.slice(0, 0)


def reward_hacks(judges: Any, scoring: Any, seed: int = 0) -> dict:
    """The report's ``stress`` section: the built-in suite against the judge group and the loop's λ."""
    from ouro_ray.eval.stress import run_stress

    report = run_stress(lambda items: combine(judges.score(items).scores, scoring), seed=seed)
    rates = dict(report.rates)
    overall = rates.pop("overall")
    return {"per_attack": rates, "overall": overall, "hacked": report.hacked()}
