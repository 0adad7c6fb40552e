"""A real quick RLHF arm through `ouro compare` on the small world and the session's Ray cluster: the
simulated human's pairs are the reward model's only data, the refitted reward model is PPO's only
teacher, and the table reports the person's minutes per 1k pairs from the run's own ledger."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.ray


def test_the_rlhf_arm_trains_ppo_on_a_reward_model_fitted_to_a_persons_pairs(ray_cluster, serve_info,
                                                                            tiny_model_dir, tmp_path):
    from ouro_ray.compare.run import compare
    from ouro_ray.loop.reward_model import TEACHER

    overrides = [
        f"model.path={tiny_model_dir}", "cluster.namespace=ouro-test", f"cluster.serve_port={serve_info.port}",
        "rollout.workers.num_workers=1", "rollout.workers.num_cpus=0.5", "reference.workers.num_workers=1",
        "reference.workers.num_cpus=0.25", "judges.min_workers=1", "judges.max_workers=1", "judges.num_cpus=0.25",
        "learner.num_workers=1", "learner.num_cpus_per_worker=0.5", "reward_model.workers.num_workers=1",
        "reward_model.workers.num_cpus=0.25", "evaluation.held_out_dialogs=4", "evaluation.teachers=[auto]",
        "human.budget_minutes=2"]  # 2 minutes at 20 s a pair: 6 of the 8 pairs asked for, 2 counted over budget
    said = []
    result = compare(None, overrides, ["sft", "rlhf"], 1, tmp_path / "cmp", quick=True, pairs_per_round=8,
                     say=said.append)
    run = tmp_path / "cmp" / "rlhf" / "seed_0"
    metrics = json.loads((run / "metrics.json").read_text())["rounds"]
    m = metrics[1]
    assert m["human_pairs"] == 6 and m["human_minutes"] == 2.0 and m["rm_buffer"] == 6 and m["rm_version"] == 1
    scores = pq.read_table(run / "round_000" / "scores.parquet")
    assert set(scores.column("teacher").to_pylist()) == {TEACHER}  # the reward model is the only teacher
    pairs = pq.read_table(run / "round_000" / "reward_pairs.parquet")
    assert set(pairs.column("source").to_pylist()) == {"human"} and pairs.num_rows == 6
    assert m["update_version"] == 1.0  # PPO trained on its rewards
    table = result["arms"]
    # 2 human minutes over 6 pairs: 2 / 6 · 1000 = 333.3 minutes per 1k pairs
    assert table["rlhf"]["human_minutes_per_1k_pairs"]["mean"] == pytest.approx(2 / 6 * 1000)
    assert table["sft"]["fact_f1"]["mean"] is not None and (tmp_path / "cmp" / "compare.md").is_file()
