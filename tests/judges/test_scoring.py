"""Stage 5's combination of teachers into one reward, with hand-worked numbers, and the review queue."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ouro_ray.config.loop import ScoringConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.judges.scoring import combine, human_rows, review_queue


def _scores(rows: list[tuple]) -> pa.Table:
    """rows: (prompt_id, candidate_id, teacher, rater, {dim: value}, reward)."""
    return pa.table({
        "prompt_id": [r[0] for r in rows], "candidate_id": [r[1] for r in rows],
        "scores": pa.array([list(r[4].items()) for r in rows], SHARDS["scores"].column("scores").type),
        "reward": pa.array([r[5] for r in rows], pa.float32()),
        "rater": [r[3] for r in rows], "teacher": [r[2] for r in rows], "notes": [None] * len(rows),
    }, schema=SHARDS["scores"].schema)


RULES = [
    ("p", "c0", "safety", "rule", {"safety": 1.0}, 1.0),
    ("p", "c0", "persona", "rule", {"length": 1.0, "no_speculation": 0.0, "voice": -0.5}, 1 / 6),
    ("p", "c0", "facts", "rule", {"content": -1.0}, -1.0),
]


def test_reward_is_the_lambda_weighted_mean_of_group_means():
    row = combine(_scores(RULES), ScoringConfig()).to_pylist()[0]
    # persona group: (1 + 0 - 0.5) / 3 = 1/6; groups safety 1, persona 1/6, content -1; logic unscored
    # λ = 1 each over the three scored groups: (1 + 1/6 - 1) / 3 = 1/18
    assert row["persona"] == pytest.approx(1 / 6)
    assert row["logic"] is None
    assert row["reward"] == pytest.approx(1 / 18)
    assert row["failure"] == "facts:content"  # the lowest single score sank it
    assert row["source"] == "teachers" and row["disagreement"] == 0.0


def test_lambdas_reweight_the_groups():
    cfg = ScoringConfig(lambdas={"content": 1.0, "logic": 1.0, "persona": 1.0, "safety": 2.0})
    # (2·1 + 1/6 − 1) / (2 + 1 + 1) = (7/6) / 4 = 7/24
    assert combine(_scores(RULES), cfg).column("reward")[0].as_py() == pytest.approx(7 / 24, abs=1e-6)
    only_safety = ScoringConfig(lambdas={"safety": 1.0, "content": 0.0, "persona": 0.0, "logic": 0.0})
    assert combine(_scores(RULES), only_safety).column("reward")[0].as_py() == pytest.approx(1.0)


def test_teacher_weights_inside_a_group_and_disagreement():
    rows = [("p", "c0", "persona", "rule", {"voice": 1.0}, 1.0),
            ("p", "c0", "llm-judge", "ai", {"persona": -0.5, "helpful": 0.5}, 0.0)]
    cfg = ScoringConfig(teachers={"llm-judge": 3.0})
    row = combine(_scores(rows), cfg).to_pylist()[0]
    # persona group: (1·1 + 3·(−0.5)) / 4 = −0.125; content (helpful) 0.5; reward (−0.125 + 0.5) / 2
    assert row["persona"] == pytest.approx(-0.125)
    assert row["reward"] == pytest.approx(0.1875)
    assert row["disagreement"] == pytest.approx(1.5)  # 1.0 vs −0.5 on persona


def test_a_human_score_is_the_final_word():
    rows = RULES + [("p", "c0", "human", "human", {"overall": -0.8}, -0.8)]
    row = combine(_scores(rows), ScoringConfig()).to_pylist()[0]
    assert row["reward"] == pytest.approx(-0.8) and row["source"] == "human"
    assert row["persona"] == pytest.approx(1 / 6)  # the teachers' groups are still reported


def test_unknown_dimension_and_unscorable_candidate_are_errors_with_the_fix():
    with pytest.raises(ValueError, match=r"scoring.groups.style"):
        combine(_scores([("p", "c0", "http", "ai", {"style": 0.3}, 0.3)]), ScoringConfig())
    assert combine(_scores([("p", "c0", "http", "ai", {"style": 0.3}, 0.3)]),
                   ScoringConfig(groups={"style": "persona"})).column("reward")[0].as_py() == pytest.approx(0.3)
    no_safety = ScoringConfig(lambdas={"safety": 0.0, "content": 1.0})
    with pytest.raises(ValueError, match="no group with λ > 0"):
        combine(_scores([("p", "c0", "safety", "rule", {"safety": 1.0}, 1.0)]), no_safety)


def test_empty_scores_of_a_teacher_do_not_count():
    rows = [("p", "c0", "safety", "rule", {"safety": 0.5}, 0.5), ("p", "c0", "facts", "rule", {}, 0.0)]
    row = combine(_scores(rows), ScoringConfig()).to_pylist()[0]
    assert row["content"] is None and row["reward"] == pytest.approx(0.5)


def test_scoring_config_checks_name_the_key():
    from ouro_ray.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="scoring.lambdas.style"):
        load_config(None, ["scoring.lambdas.style=1"])
    with pytest.raises(ConfigError, match="scoring.groups.x"):
        load_config(None, ["scoring.groups.x=tone"])


def test_human_rows_keep_only_this_rounds_candidates():
    human = _scores([("p", "c0", "human", "human", {"overall": 1.0}, 1.0),
                     ("q", "c0", "human", "human", {"overall": 1.0}, 1.0),
                     ("p", "c1", "safety", "rule", {"safety": 1.0}, 1.0)])
    candidates = pa.table({"prompt_id": ["p", "p"], "candidate_id": ["c0", "c1"]})
    kept = human_rows(human, candidates)
    assert kept.num_rows == 1 and kept.column("prompt_id").to_pylist() == ["p"]
    assert human_rows(None, candidates) is None


def test_review_queue_holds_disagreements_and_spot_checks():
    rows = [("p", "c0", "persona", "rule", {"voice": 1.0}, 1.0), ("p", "c0", "llm-judge", "ai", {"persona": -0.5}, -0.5),
            ("p", "c1", "persona", "rule", {"voice": 1.0}, 1.0), ("p", "c2", "persona", "rule", {"voice": 0.5}, 0.5)]
    scores = _scores(rows)
    rewards = combine(scores, ScoringConfig())
    items = pa.table({"prompt_id": ["p"] * 3, "candidate_id": ["c0", "c1", "c2"], "prompt": ["q?"] * 3,
                      "candidate": ["a", "b", "c"]})
    queue = review_queue(rewards, scores, items, ScoringConfig(spot_checks=1), seed=0, round_index=3)
    assert [q["reason"] for q in queue] == ["disagreement", "spot check"]
    assert queue[0]["candidate_id"] == "c0" and queue[0]["round"] == 3
    assert set(queue[0]["teachers"]) == {"persona", "llm-judge"}
    assert queue[1]["candidate_id"] in ("c1", "c2")


class _Output:
    def __init__(self, scores: pa.Table):
        self.scores, self.pairs = scores, None


class _FixedJudges:
    """Teachers that score every item with the RULES verdicts (reward 1/18, worked out above)."""

    def __init__(self):
        self.seen = None

    def score(self, items: pa.Table, revise: bool = True) -> _Output:
        self.seen = items
        rows = [(pid, cid, *rest) for pid, cid in zip(items.column("prompt_id").to_pylist(),
                                                     items.column("candidate_id").to_pylist())
                for _, _, *rest in RULES]
        return _Output(_scores(rows))


def test_score_candidates_is_the_one_path_items_teachers_humans_lambda():
    from ouro_ray.judges.scoring import score_candidates

    prompts = pa.table({"prompt_id": ["p", "q"], "prompt": ["How?", "Why?"], "label": ["safe", "unsafe"]})
    candidates = pa.table({"prompt_id": ["p", "q"], "candidate_id": ["c0", "c0"], "text": ["a", "b"]})
    human = _scores([("q", "c0", "human", "human", {"overall": -0.8}, -0.8)])
    judges = _FixedJudges()
    scored = score_candidates(candidates, prompts, judges, ScoringConfig(), human)
    assert judges.seen.column("target").to_pylist()[1]["behavior"] == "refuse"  # items joined with the prompts
    assert scored.scores.num_rows == 2 * len(RULES) + 1  # every teacher's row, then the human row
    rewards = {r["prompt_id"]: (r["reward"], r["source"]) for r in scored.rewards.to_pylist()}
    assert rewards["p"][0] == pytest.approx(1 / 18) and rewards["p"][1] == "teachers"
    assert rewards["q"][0] == pytest.approx(-0.8) and rewards["q"][1] == "human"  # the human replaced it
    with pytest.raises(KeyError, match="'r'"):
        score_candidates(pa.table({"prompt_id": ["r"], "candidate_id": ["c0"], "text": ["x"]}), prompts, judges,
                         ScoringConfig())
