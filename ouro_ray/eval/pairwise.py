"""Pairwise comparisons of models on the same prompts: win rate, ELO, and how a judge treats answer order.

Every model answers every prompt with the same sampling seed; candidate k of model A meets candidate k
of model B. Every comparison is asked in both orders (A shown first, then B shown first) and the two
verdicts are swap-averaged: ``P(A better) = (P(A first wins) + 1 − P(B first wins)) / 2``. A judge
that always prefers the first-shown answer therefore yields exactly 0.5, a tie, instead of handing
wins to whichever side a coin put first. Reported beside the ratings:

- ``position_consistency``: share of comparisons whose two orders agree (1 for a judge that reads
  answers, not slots; a deterministic grade is 1 by construction);
- ``position_bias``: of the single-order decisive verdicts, how lopsidedly they went to the
  first-shown answer (2·|rate − ½|; 1 = always first).

Three kinds of judge:
- a pairwise judge (``prefer(first, second) -> P(first is better)``: the LLM judge, an HTTP judge);
- values per candidate: the independent grade's mean (``evaluation.teachers``) or the combined reward,
  a difference under ``tie_margin`` being a tie (no position, so no position bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ouro_ray.eval.stats import bootstrap_ci, bradley_terry, bradley_terry_intervals, position_bias, win_rate


@dataclass(frozen=True)
class Comparison:
    prompt_id: str
    candidate_id: str
    model_a: str
    model_b: str


@dataclass(frozen=True)
class Verdicts:
    """The swap-averaged verdicts of a list of comparisons."""

    winners: list[str]
    """'a', 'b' or 'tie' per comparison."""
    consistent: list[bool]
    """Whether the two orders agreed, per comparison."""
    first_won: list[bool | None] | None
    """Per single-order verdict (both orders), whether the first-shown answer won; None for value judges."""


def comparisons(models: Sequence[str], keys: Sequence[tuple[str, str]]) -> list[Comparison]:
    """Every pair of models on every (prompt_id, candidate_id)."""
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    return [Comparison(p, c, a, b) for a, b in pairs for p, c in keys]


def _verdict(p_a: float, tie_band: float) -> str:
    return "tie" if abs(p_a - 0.5) <= tie_band else ("a" if p_a > 0.5 else "b")


def swap_average(p_a_first: Sequence[float], p_b_first: Sequence[float], tie_band: float,
                 positional: bool = True) -> Verdicts:
    """Verdicts from P(first-shown is better) with A shown first and with B shown first.

    A comparison ties when the averaged P(A better) is within ``tie_band`` of 0.5; each order's own
    verdict (the same band) decides consistency and, for a ``positional`` judge, position bias.
    """
    if len(p_a_first) != len(p_b_first):
        raise ValueError(f"the judge returned {len(p_a_first)} verdicts in one order and {len(p_b_first)} in the "
                         "other; fix: return one probability per pair")
    winners, consistent, first_won = [], [], []
    for p1, p2 in zip(map(float, p_a_first), map(float, p_b_first)):
        winners.append(_verdict((p1 + 1.0 - p2) / 2, tie_band))
        v1, v2 = _verdict(p1, tie_band), _verdict(1.0 - p2, tie_band)
        consistent.append(v1 == v2)
        first_won += [None if v1 == "tie" else v1 == "a", None if v2 == "tie" else v2 == "b"]
    return Verdicts(winners, consistent, first_won if positional else None)


def judge_by_values(comps: Sequence[Comparison], values: Mapping[tuple[str, str, str], float],
                    tie_margin: float) -> Verdicts:
    """Verdicts by a value per candidate (``values[(model, prompt_id, candidate_id)]``), asked in both orders:
    the first-shown answer is better (P = 1) when its value is higher by ``tie_margin`` or more."""
    def prefer(first: str, second: str, c: Comparison) -> float:
        diff = values[(first, c.prompt_id, c.candidate_id)] - values[(second, c.prompt_id, c.candidate_id)]
        return 0.5 if abs(diff) < tie_margin else float(diff > 0)

    p_a = [prefer(c.model_a, c.model_b, c) for c in comps]
    p_b = [prefer(c.model_b, c.model_a, c) for c in comps]
    return swap_average(p_a, p_b, 0.0, positional=False)


def summarise(comps: Sequence[Comparison], verdicts: Verdicts, baseline: str, *, judge: str, n_boot: int, seed: int,
              excluded: int = 0) -> dict:
    """The ``pairwise`` section of the report: ELO with intervals, win rate vs the baseline, position
    consistency and bias; ``excluded``: comparisons left out (an answer the judge could not grade)."""
    if not comps:
        raise ValueError(f"no comparison left to judge ({excluded} excluded: answers the {judge} judge could not "
                         "grade); fix: use prompts the judge can place, or evaluation.pairwise=reward")
    outcomes = [(c.model_a, c.model_b, w) for c, w in zip(comps, verdicts.winners)]
    groups = [c.prompt_id for c in comps]  # resample whole prompts: a prompt's comparisons are not independent
    prior = 0.0
    try:
        elo = bradley_terry(outcomes)
    except ValueError:  # someone won (or lost) everything: the MLE is infinite, add half a tie per pair
        prior = 0.5
        elo = bradley_terry(outcomes, prior=prior)
    intervals = bradley_terry_intervals(outcomes, groups=groups, n_boot=n_boot, seed=seed, prior=max(prior, 0.5))
    models = list(elo)
    return {
        "judge": judge,
        "comparisons": len(outcomes),
        "excluded": excluded,
        "prior": prior,
        "elo": {m: {"rating": elo[m], "ci": list(intervals[m])} for m in models},
        "win_rate": {m: _win_rate_vs(outcomes, groups, m, baseline, n_boot, seed) for m in models if m != baseline},
        "position_bias": position_bias(verdicts.first_won or []),
        "position_consistency": {"value": float(np.mean(verdicts.consistent)), "n": len(verdicts.consistent)},
    }


def _win_rate_vs(outcomes, groups, model: str, baseline: str, n_boot: int, seed: int) -> dict:
    """``model``'s win rate against ``baseline`` alone (ties half), with a prompt-clustered interval."""
    mine = [(o, g) for o, g in zip(outcomes, groups) if {o[0], o[1]} == {model, baseline}]
    if not mine:
        return {"value": None, "ci": None, "n": 0, "wins": 0, "losses": 0, "ties": 0}
    points = np.array([0.5 if w == "tie" else float((w == "a") == (a == model)) for (a, _, w), _ in mine])
    lo, hi = bootstrap_ci(points, groups=[g for _, g in mine], n_boot=n_boot, seed=seed)
    return {"value": win_rate([o for o, _ in mine], model), "ci": [lo, hi], "n": len(mine),
            "wins": int((points == 1.0).sum()), "losses": int((points == 0.0).sum()), "ties": int((points == 0.5).sum())}
