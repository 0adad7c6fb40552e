"""The evaluator pack: models' answers on the same prompts → every figure with its interval.

    answers   = score_answers(name, candidates, prompts, judges, scoring, grader)  each model, same prompts & seed
    metrics   = pointwise + coherence + independent grade per model      rewards, safety, persona, paraphrase, grade
    pairwise  = compare(answers, baseline, judges, cfg)                   win rate, ELO, position consistency
    stress    = reward_hacks(judges, scoring, teachers)                   the scoring stack, attacked

The judges are the loop's judge group (Serve replicas on a cluster, or in process): the training
teachers. The grader (``evaluation.teachers``, :mod:`ouro_ray.eval.grade`) is kept out of the reward
and grades the same answers independently. ``ouro eval`` and ``ouro run``'s per-round measurement
both go through :func:`model_metrics` and :func:`compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from ouro_ray.eval import coherence as coherence_mod
from ouro_ray.eval import grade as grade_mod
from ouro_ray.eval import metrics as metrics_mod
from ouro_ray.eval import pairwise
from ouro_ray.judges.scoring import combine, score_candidates, teacher_scores

DEFINITIONS = {
    **metrics_mod.DEFINITIONS,
    **grade_mod.DEFINITIONS,
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
    grades: pa.Table | None = None
    """The independent grade (``GRADES_SCHEMA``, one row per candidate); None when none is configured."""
    grader: str | None = None
    """Who graded (``oracle``, ``rules``)."""


def score_answers(name: str, candidates: pa.Table, prompts: pa.Table, judges: Any, scoring: Any,
                  human: pa.Table | None = None, grader: Any = None, teachers: Sequence[Any] = ()) -> Answers:
    """The training teachers' verdicts on ``candidates`` combined with the loop's λ (the one scoring
    path; ``teachers``: the driver's own besides the judge group), and apart from them the ``grader``'s
    independent grade (None: no grade). Held-out answers train nothing: the constitution rates them without
    writing revisions."""
    scored = score_candidates(candidates, prompts, judges, scoring, human, teachers, revise=False)
    grades = grader.grade(scored.items) if grader is not None else None
    return Answers(name, candidates, scored.items, scored.scores, scored.rewards, grades,
                   grader.name if grader is not None else None)


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
    if answers.grades is not None:
        graded = grade_mod.per_candidate(answers.grades, answers.rewards)
        out.update(grade_mod.summarise(graded, answers.grades, n_boot=n_boot, seed=seed))
        values = {**values, **graded}
    judge = contradiction_judge(judges) if judges is not None else None
    coherent, units = coherence_mod.coherence(answers.items, judge=judge, n_boot=n_boot, seed=seed)
    out.update(coherent)
    rows = metrics_mod.per_prompt_rows(answers.name, values)
    rows += [{"model": answers.name, "prompt_id": u["group"], "metric": "coherence",
              "value": float(u["agreeing_facts"] == u["facts"] and not u["contradiction"]), "n": len(u["answers"])}
             for u in units]
    return out, rows


def pairwise_mode(requested: str, judges: Any, graded: bool = False) -> str:
    """'grade', 'judges' or 'reward' for ``evaluation.pairwise`` (auto: the independent grade when there is
    one, else judges when one compares answers, else reward)."""
    if requested != "auto":
        return requested
    if graded:
        return "grade"
    try:
        return "judges" if judges.pairwise_judges() else "reward"
    except AttributeError:
        return "reward"


def compare(answers: Sequence[Answers], baseline: str, *, judges: Any, mode: str, tie_margin: float,
            n_boot: int = 1000, seed: int = 0) -> dict:
    """The report's ``pairwise`` section: every pair of models on their shared (prompt, candidate) keys,
    each comparison asked in both orders and swap-averaged (:mod:`ouro_ray.eval.pairwise`)."""
    by_name = {a.name: a for a in answers}
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not among the models {sorted(by_name)}")
    keys = sorted(set.intersection(*(set(zip(a.candidates.column("prompt_id").to_pylist(),
                                               a.candidates.column("candidate_id").to_pylist())) for a in answers)))
    if not keys:
        raise ValueError("the models share no (prompt_id, candidate_id): generate every model's candidates on the "
                         "same prompts with the same evaluation.n")
    comps = pairwise.comparisons([a.name for a in answers], keys)
    graded = all(a.grades is not None for a in answers)
    resolved = pairwise_mode(mode, judges, graded)
    if resolved == "grade":
        values = _grade_values(answers)
        kept = [c for c in comps if (c.model_a, c.prompt_id, c.candidate_id) in values
                and (c.model_b, c.prompt_id, c.candidate_id) in values]
        excluded = len(comps) - len(kept)
        if kept or mode == "grade":
            verdicts = pairwise.judge_by_values(kept, values, tie_margin)
            return pairwise.summarise(kept, verdicts, baseline, judge=f"grade:{answers[0].grader}", n_boot=n_boot,
                                      seed=seed, excluded=excluded)
        resolved = pairwise_mode(mode, judges)  # auto, and the grade placed no prompt: the next judge decides
    if resolved == "reward":
        rewards = {(a.name, p, c): r for a in answers for p, c, r in zip(
            *(a.rewards.column(k).to_pylist() for k in ("prompt_id", "candidate_id", "reward")))}
        verdicts, judge = pairwise.judge_by_values(comps, rewards, tie_margin), "reward"
    else:
        verdicts = _judge_pairs(comps, by_name, judges, tie_margin)
        judge = "+".join(judges.pairwise_judges())
    return pairwise.summarise(comps, verdicts, baseline, judge=judge, n_boot=n_boot, seed=seed)


def _grade_values(answers: Sequence[Answers]) -> dict[tuple[str, str, str], float]:
    """Each graded candidate's independent grade (its mean score), by (model, prompt_id, candidate_id)."""
    if any(a.grades is None for a in answers):
        missing = [a.name for a in answers if a.grades is None]
        raise ValueError(f"evaluation.pairwise = grade, but {missing} have no independent grade; fix: set "
                         "evaluation.teachers (auto, rules, labels), or evaluation.pairwise=auto")
    return {(a.name, r["prompt_id"], r["candidate_id"]): float(r["mean"])
            for a in answers for r in a.grades.select(["prompt_id", "candidate_id", "known", "mean"]).to_pylist()
            if r["known"]}


def _judge_pairs(comps, by_name: dict[str, Answers], judges: Any, tie_margin: float) -> pairwise.Verdicts:
    """Verdicts by the judge group's pairwise judges, each pair asked in both orders in one call."""
    index = {name: {(p, c): i for i, (p, c) in enumerate(zip(a.items.column("prompt_id").to_pylist(),
                                                              a.items.column("candidate_id").to_pylist()))}
             for name, a in by_name.items()}
    a_rows = [(c.model_a, index[c.model_a][(c.prompt_id, c.candidate_id)]) for c in comps]
    b_rows = [(c.model_b, index[c.model_b][(c.prompt_id, c.candidate_id)]) for c in comps]
    first, second = _gather(a_rows + b_rows, by_name), _gather(b_rows + a_rows, by_name)
    probabilities = [float(p) for p in judges.prefer(first, second)]
    if len(probabilities) != 2 * len(comps):
        raise ValueError(f"the pairwise judges returned {len(probabilities)} verdicts for {2 * len(comps)} ordered "
                         "pairs; fix: prefer() must return one probability per pair")
    return pairwise.swap_average(probabilities[:len(comps)], probabilities[len(comps):], tie_margin / 2)


def _gather(rows: list[tuple[str, int]], by_name: dict[str, Answers]) -> pa.Table:
    parts = [by_name[name].items.slice(i, 1) for name, i in rows]
    return pa.concat_tables(parts) if parts else next(iter(by_name.values())).items.slice(0, 0)


def reward_hacks(judges: Any, scoring: Any, seed: int = 0, teachers: Sequence[Any] = ()) -> dict:
    """The report's ``stress`` section: the built-in suite against the scoring stack (the judge group and
    ``teachers``, the driver's own such as the refitted reward model) combined with the loop's λ. The suite's
    answers train nothing: the constitution rates them and writes no revisions."""
    from ouro_ray.eval.stress import run_stress

    report = run_stress(lambda items: combine(teacher_scores(items, judges, teachers, revise=False)[0], scoring),
                        seed=seed)
    rates = dict(report.rates)
    overall = rates.pop("overall")
    return {"per_attack": rates, "overall": overall, "hacked": report.hacked()}
