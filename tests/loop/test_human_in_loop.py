"""`human.simulated`: a simulated person labels stage 5's review queue within the round's budget, in process
with stand-in rollout and reference roles and the real rule teachers. Its rows decide the queued
candidates' rewards, it never labels anything else (nor held-out answers), and every label is counted."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from _standins import standin_loop

from ouro_ray.eval.heldout import builtin_heldout


def _score(tmp_path, name: str, overrides: list[str]):
    loop = standin_loop(tmp_path / name, ["evaluation.teachers=[none]", "scoring.spot_checks=6", *overrides])
    prompts = builtin_heldout(3, 16)
    candidates = loop.regenerate(prompts, 0)
    rewards, scored = loop.score(candidates, prompts, 0)
    return loop, rewards, scored["stats"]


def _queue(loop) -> list[dict]:
    return [json.loads(line) for line in (loop.run.path / "review.jsonl").read_text().splitlines()]


def test_the_simulated_human_labels_the_queue_and_decides_those_rewards(tmp_path):
    loop, rewards, stats = _score(tmp_path, "human", ["human.simulated=true", "human.budget_minutes=60"])
    plain_loop, plain_rewards, plain_stats = _score(tmp_path, "plain", [])
    queued = {(q["prompt_id"], q["candidate_id"]) for q in _queue(loop)}
    assert queued and stats["human_labels"] == len(queued) == plain_stats["review_disagreements"] + 6
    assert stats["human_minutes"] == round(len(queued) * 45.0 / 60, 4) and stats["review_unlabelled"] == 0
    scores = pq.read_table(loop.run.round_dir(0) / "scores.parquet").to_pylist()
    labelled = {(r["prompt_id"], r["candidate_id"]) for r in scores if r["rater"] == "human"}
    assert labelled == queued  # the queue, and nothing else
    by_key = {(r["prompt_id"], r["candidate_id"]): r for r in rewards.to_pylist()}
    plain = {(r["prompt_id"], r["candidate_id"]): r for r in plain_rewards.to_pylist()}
    assert {k for k, r in by_key.items() if r["source"] == "human"} == queued
    assert all(by_key[k]["reward"] == plain[k]["reward"] for k in by_key if k not in queued)
    assert "human_labels" not in plain_stats  # no person, no human figures

    measured = loop.evaluate(0)  # held-out answers are never shown to the person
    assert loop.person.ledger.scores == len(queued) and "human_labels" not in measured
    held = pq.read_table(loop.run.round_dir(0) / "heldout_scores.parquet").column("rater").to_pylist()
    assert "human" not in held


def test_the_budget_stops_the_person_and_the_rest_is_counted(tmp_path):
    # 2 minutes at 45 s a label: 2 labels; every other queued candidate is counted as unlabelled
    loop, rewards, stats = _score(tmp_path, "small", ["human.simulated=true", "human.budget_minutes=2"])
    queued = _queue(loop)
    assert stats["human_labels"] == 2 and stats["review_unlabelled"] == len(queued) - 2 > 0
    assert rewards.column("source").to_pylist().count("human") == 2
