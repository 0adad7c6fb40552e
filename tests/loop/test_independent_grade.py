"""The independent grade in `ouro run`'s measurement, in process with stand-in rollout and reference roles and
the real rule teachers: it grades held-out answers only, lands beside the held-out scores, and never reaches
the scores, rewards, review queue or replay that training reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _standins import HELD_OUT, standin_loop

from ouro_ray.eval.heldout import builtin_heldout
from ouro_ray.judges import scoring
from ouro_ray.loop.driver import Loop

TEACHERS = {"safety", "persona", "facts"}


def _loop(tmp_path, teachers: str) -> Loop:
    return standin_loop(tmp_path / teachers, [f"evaluation.teachers=[{teachers}]"])


def _round(loop: Loop) -> tuple[pa.Table, list[dict]]:
    """Stage 5 and 7 on training prompts, then the measurements before and after (as round 0 and 1)."""
    prompts = builtin_heldout(3, 16)  # other wordings: training prompts, not the held-out ones
    candidates = loop.regenerate(prompts, 0)
    rewards, _ = loop.score(candidates, prompts, 0)
    loop.replay(prompts, rewards, 0)
    return rewards, [loop.evaluate(0), loop.evaluate(1)]


def test_the_independent_grade_never_reaches_the_training_signal(tmp_path, monkeypatch):
    combined = []
    real_combine = scoring.combine
    monkeypatch.setattr(scoring, "combine", lambda scores, cfg: combined.append(scores) or real_combine(scores, cfg))
    loop = _loop(tmp_path, "auto")
    graded = []
    real_grade = loop.grader.grade
    loop.grader.grade = lambda items: graded.append(items.column("prompt_id").to_pylist()) or real_grade(items)
    rewards, (before, after) = _round(loop)

    held_out = set(loop.held_out.column("prompt_id").to_pylist())
    assert len(graded) == 2 and all(set(ids) == held_out for ids in graded)  # held-out answers only, each round
    assert combined and all(set(t.column("teacher").to_pylist()) <= TEACHERS for t in combined)  # combine: teachers
    assert rewards.schema.equals(scoring.REWARDS_SCHEMA)
    d = loop.run.round_dir(0)
    for shard in ("scores", "heldout_scores"):
        assert set(pq.read_table(d / f"{shard}.parquet").column("teacher").to_pylist()) <= TEACHERS
    review = [json.loads(line) for line in (loop.run.path / "review.jsonl").read_text().splitlines()]
    assert review and all(set(q["teachers"]) <= TEACHERS for q in review)
    replay = json.loads((d / "replay.json").read_text())
    assert all(c.split(":")[0] in TEACHERS for c in replay["pool_clusters"])  # failures named by teachers only
    grades = pq.read_table(d / "heldout_grades.parquet")  # the verdicts, beside the held-out scores
    assert grades.num_rows == HELD_OUT * 2 and set(grades.column("grader").to_pylist()) == {"oracle"}

    # the same round without the grade: every training table identical, and the teachers' figures too
    plain = _loop(tmp_path, "none")
    plain_rewards, (plain_before, _) = _round(plain)
    assert plain_rewards.equals(rewards)
    for shard in ("scores", "heldout_scores"):
        assert pq.read_table(plain.run.round_dir(0) / f"{shard}.parquet").equals(pq.read_table(d / f"{shard}.parquet"))
    assert plain_before["reward_mean"] == before["reward_mean"] and plain_before["grade_judge"] == "none"
    assert "grade_mean" not in plain_before and not (plain.run.round_dir(0) / "heldout_grades.parquet").exists()


def test_the_grade_figures_and_the_win_rate_by_grade_in_the_round_metrics(tmp_path):
    _, (before, after) = _round(_loop(tmp_path, "auto"))
    # half the candidates are the catalog's own answers (grade 1, pass), half a bare hedge
    assert before["grade_n"] == HELD_OUT * 2 and before["grade_unknown"] == 0
    assert before["grade_pass"] == pytest.approx(0.5) and before["grade_judge"] == "oracle"
    for key in ("grade_mean", "grade_pass", "grade_safety", "grade_facts", "fact_f1", "grade_voice", "reward_gap"):
        lo, hi = before[f"{key}_ci"]
        assert lo <= before[key] <= hi and before[f"{key}_n"] > 0, key
    assert before["reward_gap"] == pytest.approx(before["reward_mean"] - before["grade_mean"])  # all graded
    assert after["win_rate_judge"] == "grade:oracle" and after["win_rate"] == 0.5  # the same answers: all ties
    assert after["position_consistency"] == 1.0 and after["win_rate_excluded"] == 0
