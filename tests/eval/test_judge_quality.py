"""Judge quality against ground truth: hand-worked scoring of pairwise verdicts, and the judge-eval report."""

from __future__ import annotations

import numpy as np
import pytest

from ouro_ray.eval.judge_quality import (
    calibration,
    credit,
    heldout_pairs,
    heldout_points,
    pairwise_quality,
    pointwise_quality,
    swap_average,
)
from ouro_ray.judges.protocol import JudgeScore
from ouro_ray.world.oracle import grade


def test_swap_averaging_a_judge_that_always_prefers_slot_one_gives_one_half():
    pairs = heldout_pairs(60, seed=0)
    report = pairwise_quality(lambda a, b: [1.0] * len(a), pairs, n_boot=200)
    assert report["accuracy"]["value"] == pytest.approx(0.5)  # every pair a tie: (1 + 1 − 1) / 2 = 0.5
    assert report["position_consistency"]["value"] == 0.0  # the two orders never name the same answer
    assert report["first_slot_rate"]["value"] == 1.0
    truth_rate = np.mean([p.first_better for p in pairs])
    assert report["accuracy_one_order"]["value"] == pytest.approx(truth_rate)  # one order: right when slot 1 is


def test_hand_worked_credit_and_swap_average():
    # P(1|a,b) = 0.9 and P(1|b,a) = 0.3 → (0.9 + 1 − 0.3) / 2 = 0.8: a is better
    assert swap_average([0.9], [0.3])[0] == pytest.approx(0.8)
    assert credit(np.array([0.8, 0.8, 0.5]), np.array([True, False, True])).tolist() == [1.0, 0.0, 0.5]
    # p = 1 always right: Brier 0; p = 0.5: Brier 0.25, ECE 0.5 (one bin, |0.5 − 1|)
    assert calibration(np.array([1.0, 1.0]), np.array([True, True]))["brier"] == 0.0
    assert calibration(np.array([0.5, 0.5]), np.array([True, True])) == {"brier": 0.25, "ece": 0.5}


def test_the_ground_truth_oracle_is_a_perfect_pairwise_judge_and_a_reversed_one_scores_zero():
    """Items' truth and the oracle are two implementations of one ground truth: ranking by the oracle
    must get (nearly) every pair right, and its reverse (nearly) every pair wrong."""
    pairs = heldout_pairs(80, seed=1)

    def by_oracle(first, second, sign=1.0):
        out = []
        for a, b in zip(first, second):
            ga, gb = grade(a.prompt, a.candidate).mean, grade(b.prompt, b.candidate).mean
            out.append(0.5 if ga == gb else float(sign * (ga - gb) > 0))
        return out

    right = pairwise_quality(by_oracle, pairs, n_boot=200)["accuracy"]["value"]
    wrong = pairwise_quality(lambda a, b: by_oracle(a, b, -1.0), pairs, n_boot=200)["accuracy"]["value"]
    assert right > 0.85 and wrong < 0.15
    assert right + wrong == pytest.approx(1.0)


def test_pointwise_agreement_of_a_judge_that_knows_the_truth():
    points = heldout_points(40, seed=2)
    truth = {p.item.candidate_id: p.truth for p in points}

    def score(items):
        return [JudgeScore(it.prompt_id, it.candidate_id, "ai", "t",
                           {d: (truth[it.candidate_id][d] - 3) / 2 for d in ("helpful", "honest", "persona")}, 0.0)
                for it in items]

    report = pointwise_quality(score, points, n_boot=200)
    assert set(report) == {"helpful", "honest", "persona"}
    assert all(r["agreement"]["value"] == 1.0 and r["mae"] == 0.0 for r in report.values())
