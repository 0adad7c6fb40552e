"""Stage 7: failing prompts clustered by what sank them, drawn round-robin, renamed when replayed."""

from __future__ import annotations

import pyarrow as pa

from ouro_ray.config.loop import ReplayConfig
from ouro_ray.loop.replay import clusters, draw, failing_prompts, root_id, update_pool


def _prompts(ids: list[str]) -> pa.Table:
    return pa.table({"prompt_id": ids, "prompt": [f"q {i}" for i in ids], "label": ["safe"] * len(ids)})


def _rewards(rows: list[tuple[str, float, str]]) -> pa.Table:
    return pa.table({"prompt_id": [r[0] for r in rows], "candidate_id": [f"c{i}" for i in range(len(rows))],
                     "reward": pa.array([r[1] for r in rows], pa.float32()), "failure": [r[2] for r in rows]})


def test_failing_prompts_are_labelled_by_their_most_common_failure():
    rewards = _rewards([("a", -0.5, "safety:safety"), ("a", 0.0, "safety:safety"), ("a", 0.9, "facts:content"),
                        ("b", 0.8, "persona:voice"), ("b", 0.6, "persona:voice"),
                        ("c", -1.0, "persona:no_speculation")])
    failing = failing_prompts(_prompts(["a", "b", "c"]), rewards, threshold=0.25, round_index=0)
    # a: mean (−0.5 + 0 + 0.9) / 3 ≈ 0.133 < 0.25 → in, cluster safety; b: 0.7 → out; c: −1 → in
    assert [(e["record"]["prompt_id"], e["cluster"]) for e in failing] == [("a", "safety:safety"),
                                                                           ("c", "persona:no_speculation")]
    assert abs(failing[0]["mean_reward"] - 0.4 / 3) < 1e-6


def test_draw_takes_every_cluster_before_repeating_one_and_renames():
    pool = [{"record": {"prompt_id": f"s{i}", "prompt": "x", "label": "safe"}, "cluster": "safety:safety",
             "mean_reward": -1.0, "round": 0} for i in range(4)]
    pool.append({"record": {"prompt_id": "v0", "prompt": "y", "label": "safe"}, "cluster": "persona:voice",
                 "mean_reward": 0.0, "round": 0})
    records, drawn = draw(pool, 2, seed=0, round_index=5)
    assert sorted(e["cluster"] for e in drawn) == ["persona:voice", "safety:safety"]
    assert all(r["prompt_id"].endswith("~r5") for r in records)
    assert root_id(records[0]["prompt_id"]) in {"s0", "s1", "s2", "s3", "v0"}
    assert draw(pool, 2, seed=0, round_index=5)[0] == records  # seeded


def test_pool_keeps_the_lowest_and_replaces_a_prompt_that_failed_again():
    old = [{"record": {"prompt_id": "a"}, "cluster": "x", "mean_reward": -0.2, "round": 0},
           {"record": {"prompt_id": "b"}, "cluster": "y", "mean_reward": 0.1, "round": 0}]
    again = [{"record": {"prompt_id": "a~r1"}, "cluster": "z", "mean_reward": -0.9, "round": 1},
             {"record": {"prompt_id": "c"}, "cluster": "x", "mean_reward": 0.2, "round": 1}]
    pool, cut = update_pool(old, again, ReplayConfig(max_pool=2))
    assert [e["record"]["prompt_id"] for e in pool] == ["a~r1", "b"] and cut == 1  # c (0.2) did not fit, counted
    assert clusters(pool) == {"y": 1, "z": 1}
