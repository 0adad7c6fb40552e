"""The fault drill on the small world (`benchmarks/faults.py`, `ouro bench faults`): a clean sync run (the
session's ``clean_drill``), then the same run with the rollout actor, the reference actor, the reward-model
actor, the judge replica, the weight store and the learner worker all killed as round 1 starts. The drilled run
completes, nothing is lost or duplicated in any round's shards, and its metrics equal the clean run's."""

from __future__ import annotations

import pytest
from _paths import learner_temp_dirs

pytestmark = pytest.mark.ray


def test_every_role_killed_at_once_and_the_run_comes_through_whole(clean_drill, serve_info, tiny_model_dir,
                                                                   tmp_path):
    from benchmarks.faults import DRILL, IN_PROCESS, check, drill_in_process

    overrides = [*DRILL, f"model.path={tiny_model_dir}", "cluster.namespace=ouro-test",
                 f"cluster.serve_port={serve_info.port}"]
    clean = clean_drill
    temp_before = learner_temp_dirs()
    drilled = drill_in_process(None, overrides, tmp_path / "drilled", IN_PROCESS)
    row = check("all at once", clean, drilled, tmp_path / "drilled", rounds=2, n=2)
    assert row["completed"] and row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["metrics_equal"], row["differences"]
    assert row["learner_restarts"] >= 1  # the Ray Train worker group was restarted, not the run
    assert drilled["killed_at"] is not None
    # the restarted worker read Ray Train's checkpoint and removed its copy; no checkpoint was left behind
    assert learner_temp_dirs() - temp_before == set()


def test_the_checks_see_a_lost_and_a_duplicated_candidate(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.faults import exactly_once, metric_differences

    d = tmp_path / "round_000"
    d.mkdir()
    pq.write_table(pa.table({"prompt_id": ["p", "q"]}), d / "labyrinth.parquet")
    rows = {"prompt_id": ["p", "p", "q", "q"], "candidate_id": ["c0", "c1", "c0", "c0"]}  # q/c1 lost, q/c0 twice
    pq.write_table(pa.table(rows), d / "candidates.parquet")
    pq.write_table(pa.table(rows), d / "rewards.parquet")
    pq.write_table(pa.table({**rows, "teacher": ["t"] * 4}), d / "scores.parquet")
    assert exactly_once(tmp_path, rounds=1, n=2) == {"lost": 3, "duplicated": 3}
    # wall times and the rates over them differ between any two runs; the seeded figures must not
    assert metric_differences([{"round": 1, "grade": 0.5, "seconds_round": 3.0, "update_tokens_per_s": 140.1}],
                              [{"round": 1, "grade": 0.4, "seconds_round": 9.0, "update_tokens_per_s": 119.8}]) \
        == ["round 1: grade 0.5 != 0.4"]
