"""How good is a judge? Its verdicts against the tiny world's ground truth, on items it never trained on.

Items come from :mod:`ouro_ray.world_judge.answers` on the held-out side of its split: held-out
phrasings, held-out catalog entries and held-out answer families (``injection``) beside the
training families, so a figure per family shows where a judge generalises and where it does not.

- **pairwise**: each pair (a better and a worse answer to one request, ground-truth qualities at
  least ``min_gap`` apart) is shown in both orders. The swap-averaged probability
  ``p = (P(1 | a, b) + 1 − P(1 | b, a)) / 2`` decides; ``p = 0.5`` is a tie and counts one half, so a
  judge that always picks slot 1 scores exactly 0.5. **Position consistency** is the share of pairs
  whose two orders name the same answer. **Calibration**: Brier score and expected calibration
  error (10 bins) of ``p`` against the truth.
- **pointwise**: per dimension, agreement of the rounded expected score with the true digit (and
  within one), Spearman correlation, and the mean absolute error of the expected score.

Every rate carries its n and a 95 % bootstrap interval (:func:`ouro_ray.eval.stats.bootstrap_ci`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ouro_ray.eval.stats import bootstrap_ci
from ouro_ray.judges.protocol import JudgeItem, JudgeScore
from ouro_ray.world_judge.answers import DIMENSIONS, Split, answer, families_for, grades, make_case, quality
from ouro_ray.world_judge.examples import MIN_GAP, item_of

PreferFn = Callable[[Sequence[JudgeItem], Sequence[JudgeItem]], list[float]]
ScoreFn = Callable[[Sequence[JudgeItem]], list[JudgeScore]]


@dataclass(frozen=True)
class Pair:
    """Two answers to one request; ``first_better`` is the ground truth."""

    first: JudgeItem
    second: JudgeItem
    first_better: bool
    family: str
    """The worse answer's family (what the judge has to see through)."""


@dataclass(frozen=True)
class Point:
    """One answer with its true rubric digits."""

    item: JudgeItem
    truth: dict[str, int]
    family: str


def heldout_pairs(n: int, seed: int, held_out: bool = True, min_gap: float = MIN_GAP) -> list[Pair]:
    """``n`` ground-truth pairs from the held-out (default) or training side of the judge's split."""
    split, rng = Split(held_out=held_out), random.Random(f"ouro-ray/judge-eval/pairs/{seed}/{held_out}")
    out: list[Pair] = []
    while len(out) < n:
        case = make_case(rng, split)
        fa, fb = rng.sample(families_for(case, split), 2)
        a, b = answer(rng, case, fa, split), answer(rng, case, fb, split)
        qa, qb = quality(case, a), quality(case, b)
        if abs(qa - qb) >= min_gap:
            k = len(out)
            out.append(Pair(item_of(case, a.text, f"{k}a"), item_of(case, b.text, f"{k}b"), qa > qb,
                            (b if qa > qb else a).family))
    return out


def heldout_points(n: int, seed: int, held_out: bool = True) -> list[Point]:
    split, rng = Split(held_out=held_out), random.Random(f"ouro-ray/judge-eval/points/{seed}/{held_out}")
    out = []
    for k in range(n):
        case = make_case(rng, split)
        a = answer(rng, case, rng.choice(families_for(case, split)), split)
        out.append(Point(item_of(case, a.text, f"{k}"), grades(case, a), a.family))
    return out


def rate(values: Sequence[float], n_boot: int, seed: int) -> dict:
    x = np.asarray(values, float)
    if x.size == 0:
        return {"value": None, "ci": None, "n": 0}
    lo, hi = bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return {"value": float(x.mean()), "ci": [lo, hi], "n": int(x.size)}


def swap_average(p_ab: Sequence[float], p_ba: Sequence[float]) -> np.ndarray:
    """P(first better) with both orders shown: the mean of P(1 | a, b) and 1 − P(1 | b, a)."""
    return (np.asarray(p_ab, float) + 1.0 - np.asarray(p_ba, float)) / 2.0


def credit(p: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 for the right answer, 0 for the wrong one, 1/2 for a tie (p exactly 0.5)."""
    right = np.where(truth, p > 0.5, p < 0.5).astype(float)
    return np.where(p == 0.5, 0.5, right)


def calibration(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict:
    """Brier score and expected calibration error (equal-width bins of p) against the truth."""
    y = truth.astype(float)
    edges = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[edges == b].mean() - y[edges == b].mean()) * (edges == b).mean() for b in range(bins)
              if (edges == b).any())
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece)}


def pairwise_quality(prefer: PreferFn, pairs: Sequence[Pair], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy (swap-averaged), first-order accuracy, position consistency, calibration, per family."""
    first, second = [p.first for p in pairs], [p.second for p in pairs]
    p_ab, p_ba = np.asarray(prefer(first, second), float), np.asarray(prefer(second, first), float)
    truth = np.array([p.first_better for p in pairs])
    p = swap_average(p_ab, p_ba)
    acc = credit(p, truth)
    consistent = ((p_ab > 0.5) == (p_ba < 0.5)) & (p_ab != 0.5) & (p_ba != 0.5)
    by_family: dict[str, list[float]] = defaultdict(list)
    for pair, c in zip(pairs, acc):
        by_family[pair.family].append(c)
    return {"accuracy": rate(acc, n_boot, seed), "accuracy_one_order": rate(credit(p_ab, truth), n_boot, seed),
            "position_consistency": rate(consistent.astype(float), n_boot, seed),
            "first_slot_rate": rate((p_ab > 0.5).astype(float), n_boot, seed),
            "calibration": calibration(p, truth),
            "by_family": {f: rate(v, n_boot, seed) for f, v in sorted(by_family.items())}}


def pointwise_quality(score: ScoreFn, points: Sequence[Point], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Per dimension the judge scores: agreement (exact, within one), Spearman, mean absolute error."""
    verdicts = score([p.item for p in points])
    out = {}
    dims = [d for d in DIMENSIONS if verdicts and d in verdicts[0].scores]
    for d in dims:
        expected = np.array([3.0 + 2.0 * v.scores[d] for v in verdicts])  # [-1, 1] back to 1..5
        true = np.array([p.truth[d] for p in points], float)
        out[d] = {"agreement": rate(np.rint(expected) == true, n_boot, seed),
                  "within_one": rate(np.abs(expected - true) <= 1.0, n_boot, seed),
                  "spearman": _spearman(expected, true), "mae": float(np.mean(np.abs(expected - true)))}
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if np.std(x) == 0 or np.std(y) == 0:
        return None
    rx, ry = (np.argsort(np.argsort(v)).astype(float) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])
