"""Pairwise comparisons of models on the same prompts: win rate, ELO, and the judge's position bias.

Every model answers every prompt with the same sampling seed; candidate k of model A meets candidate k
of model B. The order in which a pairwise judge sees the two answers is drawn per comparison from a
seeded coin, so a judge that favours the first-shown answer helps each model equally often (its bias
cancels in expectation) and is reported as ``position_bias``.

Two kinds of judge:
- a pairwise judge (``prefer(first, second) -> P(first is better)``: the LLM judge, an HTTP judge);
- ``reward``: the loop's own scoring stack, comparing the two candidates' combined rewards (no
  position, so no position bias; a difference under ``tie_margin`` is a tie).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ouro_ray.eval.stats import bootstrap_ci, bradley_terry, bradley_terry_intervals, position_bias, win_rate
from ouro_ray.judges.protocol import JudgeItem
from ouro_ray.seeding import derive_seed

Prefer = Callable[[Sequence[JudgeItem], Sequence[JudgeItem]], Sequence[float]]
"""P(first answer is better) for each pair, in [0, 1]."""


@dataclass(frozen=True)
class Comparison:
    prompt_id: str
    candidate_id: str
    model_a: str
    model_b: str
    a_first: bool
    """Whether model_a's answer was shown first."""


def comparisons(models: Sequence[str], keys: Sequence[tuple[str, str]], seed: int) -> list[Comparison]:
    """Every pair of models on every (prompt_id, candidate_id), with a seeded presentation order."""
    rng = np.random.default_rng(derive_seed(seed, "eval/pairwise-order"))
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    flips = rng.random(len(pairs) * len(keys)) < 0.5
    return [Comparison(p, c, a, b, bool(flips[k])) for k, ((a, b), (p, c)) in
            enumerate((pair, key) for pair in pairs for key in keys)]


def winner_from_probability(p_first: float, a_first: bool, tie_band: float) -> tuple[str, bool | None]:
    """``(winner 'a'|'b'|'tie', first_won True|False|None)`` from P(first-shown is better)."""
    if abs(p_first - 0.5) <= tie_band:
        return "tie", None
    first_won = p_first > 0.5
    return ("a" if first_won == a_first else "b"), first_won


def judge_by_preference(comps: Sequence[Comparison], items: Mapping[tuple[str, str, str], JudgeItem],
                        prefer: Prefer, tie_band: float) -> tuple[list[str], list[bool | None]]:
    """Winners of ``comps`` by a pairwise judge; ``items[(model, prompt_id, candidate_id)]``."""
    first, second = [], []
    for c in comps:
        a, b = items[(c.model_a, c.prompt_id, c.candidate_id)], items[(c.model_b, c.prompt_id, c.candidate_id)]
        first.append(a if c.a_first else b)
        second.append(b if c.a_first else a)
    probabilities = list(prefer(first, second)) if comps else []
    if len(probabilities) != len(comps):
        raise ValueError(f"the pairwise judge returned {len(probabilities)} verdicts for {len(comps)} pairs")
    verdicts = [winner_from_probability(float(p), c.a_first, tie_band) for p, c in zip(probabilities, comps)]
    return [w for w, _ in verdicts], [f for _, f in verdicts]


def judge_by_reward(comps: Sequence[Comparison], rewards: Mapping[tuple[str, str, str], float],
                    tie_margin: float) -> list[str]:
    """Winners of ``comps`` by the combined reward of each side (order plays no part)."""
    winners = []
    for c in comps:
        diff = rewards[(c.model_a, c.prompt_id, c.candidate_id)] - rewards[(c.model_b, c.prompt_id, c.candidate_id)]
        winners.append("tie" if abs(diff) < tie_margin else ("a" if diff > 0 else "b"))
    return winners


def summarise(comps: Sequence[Comparison], winners: Sequence[str], first_won: Sequence[bool | None] | None,
              baseline: str, *, judge: str, n_boot: int, seed: int) -> dict:
    """The ``pairwise`` section of the report: ELO with intervals, win rate vs the baseline, position bias."""
    outcomes = [(c.model_a, c.model_b, w) for c, w in zip(comps, winners)]
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
        "prior": prior,
        "elo": {m: {"rating": elo[m], "ci": list(intervals[m])} for m in models},
        "win_rate": {m: _win_rate_vs(outcomes, groups, m, baseline, n_boot, seed) for m in models if m != baseline},
        "position_bias": position_bias(list(first_won) if first_won is not None else []),
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
