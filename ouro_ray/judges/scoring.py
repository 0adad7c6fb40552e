"""Stage 5's glue: many teachers' verdicts → one bounded reward per candidate, and the review queue.

Notation: a teacher t scores a candidate on dimensions d, each in [-1, 1]. Every dimension belongs
to one rubric group g ∈ {content, logic, persona, safety} (``DIMENSION_GROUPS`` + ``scoring.groups``).

    m[t, g] = mean of t's dimensions in g
    G[g]    = Σ_t w_t · m[t, g] / Σ_t w_t          (teachers that scored g, weight w_t > 0)
    reward  = Σ_g λ_g · G[g] / Σ_g λ_g             (groups the candidate was scored on, λ_g > 0)

A convex combination of values in [-1, 1], so the reward is bounded by construction. A human
verdict (rater ``human``) is the final word: it replaces the reward (humans settle disagreements).
Teachers disagree on a candidate when two of them score one group more than
``scoring.review_threshold`` apart; such candidates go to the review queue with the reason.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from ouro_ray.config.loop import DIMENSION_GROUPS, LAMBDA_GROUPS, ScoringConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.judges.items import items_from_table, judge_items, scores_table
from ouro_ray.judges.reading import UNREADABLE
from ouro_ray.seeding import derive_seed

REWARDS_SCHEMA = SHARDS["rewards"].schema
"""One row per candidate: the combined reward and what it is made of (the ``rewards`` shard)."""


@dataclass(frozen=True)
class Combined:
    """Stage 5's result: the per-candidate rewards table and the candidates queued for humans."""

    rewards: pa.Table
    review: list[dict]
    humans: int
    """Candidates whose reward a human score set."""


def dimension_group(dimension: str, extra: dict[str, str]) -> str:
    """The rubric group of ``dimension``; unknown ones are an error naming the fix."""
    group = extra.get(dimension) or DIMENSION_GROUPS.get(dimension)
    if group is None:
        raise ValueError(f"judge dimension {dimension!r} belongs to no rubric group; fix: map it with "
                         f"scoring.groups.{dimension}=<{'|'.join(LAMBDA_GROUPS)}>")
    return group


def _by_candidate(scores: pa.Table) -> dict[tuple[str, str], list[dict]]:
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in scores.to_pylist():
        rows[(row["prompt_id"], row["candidate_id"])].append(row)
    return rows


def _teacher_groups(rows: list[dict], cfg: ScoringConfig) -> dict[str, dict[str, float]]:
    """m[t, g] for the machine teachers (weight > 0) of one candidate."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        teacher = row["teacher"] or row["rater"]
        if row["rater"] == "human" or cfg.teachers.get(teacher, 1.0) <= 0:
            continue
        for dim, value in row["scores"]:
            out[teacher][dimension_group(dim, cfg.groups)].append(float(value))
    return {t: {g: float(np.mean(v)) for g, v in groups.items()} for t, groups in out.items()}


def _failure(rows: list[dict]) -> str | None:
    scored = [(float(v), f"{row['teacher'] or row['rater']}:{dim}") for row in rows if row["rater"] != "human"
              for dim, v in row["scores"]]
    return min(scored)[1] if scored else None


def combine_candidate(rows: list[dict], cfg: ScoringConfig) -> dict:
    """The rewards row (without ids) of one candidate from its teachers' ``scores`` rows."""
    m = _teacher_groups(rows, cfg)
    groups: dict[str, float] = {}
    spread = 0.0
    for g in LAMBDA_GROUPS:
        values = [(cfg.teachers.get(t, 1.0), by_group[g]) for t, by_group in m.items() if g in by_group]
        if values:
            w = np.array([v[0] for v in values])
            x = np.array([v[1] for v in values])
            groups[g] = float(w @ x / w.sum())
            spread = max(spread, float(x.max() - x.min()))
    weighted = [(cfg.lambdas.get(g, 0.0), v) for g, v in groups.items() if cfg.lambdas.get(g, 0.0) > 0]
    humans = [float(r["reward"]) for r in rows if r["rater"] == "human"]
    if humans:
        reward, source = float(np.mean(humans)), "human"
    elif weighted:
        lam = np.array([w for w, _ in weighted])
        reward, source = float(lam @ np.array([v for _, v in weighted]) / lam.sum()), "teachers"
    else:
        key = (rows[0]["prompt_id"], rows[0]["candidate_id"])
        raise ValueError(f"candidate {key} was scored on no group with λ > 0 (groups {sorted(groups) or 'none'}); "
                         "fix: give one of those groups a positive scoring.lambdas weight, or add a teacher")
    return {"reward": float(np.clip(reward, -1.0, 1.0)), **{g: groups.get(g) for g in LAMBDA_GROUPS},
            "failure": _failure(rows), "source": source, "disagreement": spread}


def combine(scores: pa.Table, cfg: ScoringConfig) -> pa.Table:
    """One ``REWARDS_SCHEMA`` row per candidate of the ``scores`` table (candidates in first-seen order)."""
    out = []
    for (pid, cid), rows in _by_candidate(scores).items():
        out.append({"prompt_id": pid, "candidate_id": cid, **combine_candidate(rows, cfg)})
    return pa.Table.from_pylist(out, schema=REWARDS_SCHEMA)


def human_rows(human: pa.Table | None, candidates: pa.Table) -> pa.Table | None:
    """The rows of a human scores table that name one of ``candidates`` (None when there are none)."""
    if human is None:
        return None
    keys = set(zip(candidates.column("prompt_id").to_pylist(), candidates.column("candidate_id").to_pylist()))
    mask = [(p, c) in keys and r == "human" for p, c, r in zip(
        human.column("prompt_id").to_pylist(), human.column("candidate_id").to_pylist(),
        human.column("rater").to_pylist())]
    rows = human.filter(pa.array(mask, pa.bool_()))
    return rows if rows.num_rows else None


@dataclass(frozen=True)
class Scored:
    """Stage 5 on a batch of candidates: what the judges read, what they said, and the rewards."""

    items: pa.Table
    """``judge_items``: each candidate with its prompt and target."""
    scores: pa.Table
    """``scores``: one row per (candidate, teacher), human rows appended."""
    rewards: pa.Table
    """``REWARDS_SCHEMA``: one combined reward per candidate."""
    output: Any
    """The judges' whole output (``scores`` and the constitution's ``pairs``)."""


def teacher_scores(items: pa.Table, judges: Any, teachers: Sequence[Any] = (),
                   revise: bool = True) -> tuple[pa.Table, Any]:
    """Every machine teacher's ``scores`` rows on ``items`` (a ``judge_items`` table): the judge group's,
    then ``teachers``' (the driver's own); and the group's output (its counts). ``revise=False``: the
    constitution writes no revisions (held-out answers)."""
    output = judges.score(items) if revise else judges.score(items, revise=False)
    scores = output.scores
    if teachers:
        judged = items_from_table(items)
        extra = [scores_table(t.score(judged)).cast(scores.schema) for t in teachers]
        scores = pa.concat_tables([scores, *extra])
    return scores, output


def score_candidates(candidates: pa.Table, prompts: pa.Table, judges: Any, scoring: ScoringConfig,
                     human: pa.Table | None = None, teachers: Sequence[Any] = (), revise: bool = True) -> Scored:
    """The one scoring path (``ouro run``'s stage 5 and held-out measurement, ``ouro score``, ``ouro eval``):
    judge items → every teacher (``judges.score``, then ``teachers``: the driver's own, such as the loop's
    refitted reward model) → human rows joined → λ-combination.

    Raises KeyError naming a candidate whose prompt is missing from ``prompts``.
    """
    items = judge_items(candidates, prompts)
    scores, output = teacher_scores(items, judges, teachers, revise)
    humans = human_rows(human, candidates)
    if humans is not None:
        scores = pa.concat_tables([scores, humans.cast(scores.schema)])
    return Scored(items, scores, combine(scores, scoring), output)


def label_review(scored: Scored, queue: Sequence[dict], person: Any, scoring: ScoringConfig) -> tuple[Scored, int]:
    """A person (:class:`~ouro_ray.judges.human.SimulatedHuman`, or anything with ``score``) scores the
    queued candidates in queue order (disagreements first) as far as its budget goes; its rows join the
    round's scores and decide those candidates' rewards, as a ``data.scores`` row would. Returns the
    new :class:`Scored` and how many candidates the person scored."""
    by_key = {item.key: item for item in items_from_table(scored.items)}
    wanted = [by_key[(q["prompt_id"], q["candidate_id"])] for q in queue]
    labels = person.score(wanted) if wanted else []
    if not labels:
        return scored, 0
    scores = pa.concat_tables([scored.scores, scores_table(labels).cast(scored.scores.schema)])
    return Scored(scored.items, scores, combine(scores, scoring), scored.output), len(labels)


def review_queue(rewards: pa.Table, scores: pa.Table, items: pa.Table, cfg: ScoringConfig, seed: int,
                 round_index: int) -> list[dict]:
    """Candidates for humans: every one a judge gave no readable verdict on (``unreadable``), every disagreement
    beyond the threshold, plus ``spot_checks`` random ones."""
    rows = rewards.to_pylist()
    verdicts = _by_candidate(scores)
    unreadable = [i for i, r in enumerate(rows) if r["source"] != "human" and any(
        UNREADABLE in (v["notes"] or "") for v in verdicts[(r["prompt_id"], r["candidate_id"])])]
    disagree = [i for i, r in enumerate(rows) if r["disagreement"] > cfg.review_threshold and r["source"] != "human"
                and i not in set(unreadable)]
    taken = set(unreadable) | set(disagree)
    rest = [i for i in range(len(rows)) if i not in taken and rows[i]["source"] != "human"]
    rng = random.Random(derive_seed(seed, "review", round_index))
    spot = sorted(rng.sample(rest, min(cfg.spot_checks, len(rest))))
    texts = {(r["prompt_id"], r["candidate_id"]): r for r in items.to_pylist()}
    queue = []
    for i, reason in ([(i, "unreadable") for i in unreadable] + [(i, "disagreement") for i in disagree]
                      + [(i, "spot check") for i in spot]):
        r = rows[i]
        key = (r["prompt_id"], r["candidate_id"])
        item = texts[key]
        queue.append({
            "round": round_index, "reason": reason, "prompt_id": key[0], "candidate_id": key[1],
            "prompt": item["prompt"], "candidate": item["candidate"], "reward": round(r["reward"], 4),
            "disagreement": round(r["disagreement"], 4),
            "teachers": {(v["teacher"] or v["rater"]): {"scores": dict(v["scores"]), "notes": v["notes"]}
                         for v in verdicts[key]},
        })
    return queue


def mean_by(values: Iterable[float | None]) -> float | None:
    """Mean of the non-null values (None when there are none)."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


class UnreadableVerdicts(RuntimeError):
    """Too many of the HTTP judge's verdicts could not be read for a round to trust its rewards."""


def check_unreadable(stats: dict, max_share: float, round_index: int) -> None:
    """Stop the round when the HTTP judge's unreadable share passes ``judges.http.max_unreadable``."""
    read, bad = stats.get("http_readings", 0), stats.get("http_unreadable", 0)
    if read and bad / read > max_share:
        raise UnreadableVerdicts(
            f"round {round_index}: {bad} of {read} HTTP judge verdicts ({bad / read:.0%}) were unreadable (no score "
            f"token in the answer), more than judges.http.max_unreadable = {max_share:.0%}; the round stops rather "
            "than train on them; fix: check judges.http.model and judges.http.api (a chat model may need api: chat), "
            "raise judges.http.top_logprobs, or raise max_unreadable; `ouro run --resume` reruns the round")
