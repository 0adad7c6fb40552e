"""`ouro run` end to end on the small tiny model, through real Ray actors: rollout and reference
actors, the judge group on Ray Serve, the learner on Ray Train; then an interrupted round and resume.

The run is in async mode (``loop.max_staleness=1``): the next round's experience is made while the
update trains. Sync mode's exact policy versions are checked by the BCR test (tests/loop/test_bcr.py).
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from rich.console import Console

pytestmark = pytest.mark.ray

ROUNDS = 2


def _overrides(model_dir: str) -> list[str]:
    return [
        f"model.path={model_dir}", "cluster.namespace=ouro-test", f"rounds={ROUNDS}",
        "data.synthetic_dialogs=6", "loop.prompts_per_round=16", "distill.use_ai=true",
        "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=12",
        "rollout.workers.num_workers=1", "rollout.workers.num_cpus=0.5",
        "reference.workers.num_workers=1", "reference.workers.num_cpus=0.25",
        # RLAIF: the world's own judge (judges.llm.model auto) and the constitution, beside the rules
        "judges.llm.enabled=true", "judges.constitution.enabled=true", "judges.constitution.per_prompt=1",
        "judges.constitution.max_new_tokens=24", "learner.ppo.ptx_coef=0.1",
        "judges.min_workers=1", "judges.max_workers=1", "judges.num_cpus=0.25",
        "learner.algo=ppo", "learner.num_workers=1", "learner.num_cpus_per_worker=0.5",
        "learner.optim.lr=1e-3", "learner.optim.micro_batch_size=16",
        "evaluation.held_out_dialogs=4", "evaluation.size=8", "evaluation.n=2",
        "replay.threshold=0.5",  # the small model writes noise (content -1): its prompts fail and come back
        "loop.mode=async", "loop.max_staleness=1",
        # stage 7's reward model: refitted every round in the driver, served by its own actor
        "reward_model.refit_every=1", "reward_model.workers.num_workers=1", "reward_model.workers.num_cpus=0.25",
    ]


@pytest.fixture(scope="module")
def finished_run(ray_cluster, serve_info, tiny_model_dir, tmp_path_factory):
    """A fresh two-round run; returns (run dir, metrics rounds)."""
    from ouro_ray.loop.run import open_run, run

    out = tmp_path_factory.mktemp("loop") / "run"
    overrides = _overrides(tiny_model_dir) + [f"cluster.serve_port={serve_info.port}"]
    cfg, run_dir = open_run(None, overrides, str(out), None)
    history = run(cfg, run_dir, console=Console(file=open(out.parent / "console.txt", "w"), width=160))
    return run_dir, history


SHARDS_PER_ROUND = {
    "dialogs": "dialogs", "summaries": "summaries", "labyrinth": "labyrinth", "candidates": "candidates",
    "scores": "scores", "experience": "experience", "heldout_candidates": "candidates", "heldout_scores": "scores",
}


def test_every_stage_writes_its_shard_with_the_right_schema(finished_run):
    from ouro_ray.data import read_shard
    from ouro_ray.judges.scoring import REWARDS_SCHEMA

    run_dir, _ = finished_run
    for r in range(ROUNDS):
        d = run_dir.path / f"round_{r:03d}"
        for name, kind in SHARDS_PER_ROUND.items():
            table = read_shard(d / f"{name}.parquet", kind).table  # validates the schema and every row
            assert table.num_rows > 0, (r, name)
        for name in ("dialogs", "summaries", "labyrinth", "scores"):
            assert read_shard(d / f"{name}.jsonl", name if name != "labyrinth" else "labyrinth").table.num_rows > 0
        rewards = pq.read_table(d / "rewards.parquet")
        assert rewards.schema.equals(REWARDS_SCHEMA)
        candidates = pq.read_table(d / "candidates.parquet")
        assert rewards.num_rows == candidates.num_rows  # every candidate got one combined reward
        versions = set(candidates.column("policy_version").to_pylist())
        assert versions <= {max(r - 1, 0), r}, (r, versions)  # at most one version stale
        replay = json.loads((d / "replay.json").read_text())
        assert set(replay) == {"failing", "pool_clusters"}
    # round 1 mixes replayed prompts from round 0's failures back in
    prompts = pq.read_table(run_dir.path / "round_001" / "labyrinth.parquet").column("prompt_id").to_pylist()
    assert any("~r1" in p for p in prompts)


def test_the_ai_judge_and_the_constitution_score_every_round(finished_run):
    """AI feedback is real: the world's judge scores every candidate, the constitution critiques and revises one
    candidate per prompt, and the counts are in the metrics."""
    run_dir, history = finished_run
    for r in range(ROUNDS):
        scores = pq.read_table(run_dir.path / f"round_{r:03d}" / "scores.parquet")
        teachers = scores.column("teacher").to_pylist()
        candidates = pq.read_table(run_dir.path / f"round_{r:03d}" / "candidates.parquet").num_rows
        assert teachers.count("llm-judge") == candidates  # every candidate, by the AI judge
        n_prompts = len(set(scores.column("prompt_id").to_pylist()))
        assert teachers.count("constitution") == n_prompts  # candidate c0 of each prompt, critiqued and revised
        m = history[r + 1]
        assert m["constitution_revised"] == n_prompts and m["judge_prompts"] >= 3 * candidates
        assert m["judge_shortened"] == 0  # the world's prompts fit its judge's context
        assert m["constitution_pairs"] >= 0
        if m["constitution_pairs"]:
            pairs = pq.read_table(run_dir.path / f"round_{r:03d}" / "constitution_pairs.parquet")
            assert pairs.num_rows == m["constitution_pairs"] and set(pairs.column("source").to_pylist()) == {"constitution"}


def test_the_reward_model_is_refitted_every_round_and_teaches_from_the_first_refit(finished_run):
    from ouro_ray.loop.reward_model import TEACHER

    run_dir, history = finished_run
    for r in range(ROUNDS):
        d = run_dir.path / f"round_{r:03d}"
        pairs = pq.read_table(d / "reward_pairs.parquet")
        m = history[r + 1]
        assert m["rm_pairs_new"] == pairs.num_rows
        # round 0 has no pairs to refit on yet; every later round starts with a refit on the earlier rounds' pairs
        if r == 0:
            assert m["rm_refit_skipped"] == 1.0 and "rm_version" not in m
        else:
            assert m["rm_version"] == r and m["rm_buffer"] > 0
        teachers = pq.read_table(d / "scores.parquet").column("teacher").to_pylist()
        assert (TEACHER in teachers) == (r > 0), r
    assert json.loads((run_dir.path / "state.json").read_text())["reward_model_version"] == ROUNDS - 1


def test_metrics_cover_round_zero_and_every_round_and_the_reward_moved(finished_run):
    run_dir, history = finished_run
    metrics = json.loads((run_dir.path / "metrics.json").read_text())["rounds"]
    assert [m["round"] for m in metrics] == list(range(ROUNDS + 1))
    assert [m["policy_version"] for m in metrics] == list(range(ROUNDS + 1))
    for key in ("reward_mean", "safety", "persona", "kl"):
        assert all(isinstance(m[key], float) for m in metrics), key
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # round 0: the policy is the reference
    assert metrics[-1]["kl"] != pytest.approx(0.0, abs=1e-4)
    assert metrics[-1]["reward_mean"] != metrics[0]["reward_mean"]
    assert all(-1.0 <= m["reward_mean"] <= 1.0 for m in metrics)
    assert metrics[1]["update_version"] == 1.0 and metrics[2]["update_version"] == 2.0
    assert metrics[1]["staleness"] == 0 and metrics[2]["staleness"] in (0, 1)
    # the evaluator pack's figures: every metric with its 95 % interval, and the win rate against round 0
    for m in metrics:
        lo, hi = m["reward_mean_ci"]
        assert lo <= m["reward_mean"] <= hi and m["reward_mean_n"] == m["n_candidates"]
    assert "win_rate" not in metrics[0]
    assert all(0.0 <= m["win_rate"] <= 1.0 and m["win_rate_n"] == m["n_candidates"] for m in metrics[1:])
    # the independent grade (the oracle, kept out of the reward) beside the teachers' reward, and it decides
    # the win rate, each comparison in both orders
    for m in metrics:
        assert m["grade_judge"] == "oracle" and m["grade_n"] + m["grade_unknown"] == m["n_candidates"]
        for key in ("grade_mean", "grade_pass", "grade_safety", "grade_voice", "reward_gap"):
            lo, hi = m[f"{key}_ci"]
            assert lo <= m[key] <= hi, key
        assert -2.0 <= m["reward_gap"] <= 2.0
    assert metrics[1]["win_rate_judge"] == "grade:oracle" and metrics[1]["position_consistency"] == 1.0


def test_async_mode_makes_the_next_rounds_experience_while_the_update_trains(finished_run):
    run_dir, _ = finished_run
    rows = [json.loads(line) for line in (run_dir.path / "timeline.jsonl").read_text().splitlines()]
    update0 = next(r for r in rows if r["round"] == 0 and r["stage"] == "update")
    ahead1 = [r for r in rows if r["round"] == 1 and r["lane"] == "ahead"]
    assert [r["stage"] for r in ahead1] == ["dialogue", "distill", "labyrinth", "regenerate", "score", "replay"]
    assert ahead1[0]["start"] < update0["end"]  # round 1 began before round 0's update was done


def test_run_writes_the_report_files_and_the_policy(finished_run):
    from transformers import AutoModelForCausalLM

    run_dir, _ = finished_run
    p = run_dir.path
    header = (p / "training_history.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["epoch", "avg_reward", "safety_score", "kl"]
    assert {"reward_mean_ci_lo", "reward_mean_ci_hi", "win_rate"} <= set(header)  # intervals as two columns
    assert {"grade_mean", "grade_mean_ci_lo", "grade_pass", "reward_gap", "grade_unknown"} <= set(header)
    assert (p / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (p / "grade_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in range(ROUNDS + 1):  # the oracle's verdicts beside the held-out scores, every measurement
        grades = pq.read_table(p / f"round_{r:03d}" / "heldout_grades.parquet")
        assert grades.num_rows == pq.read_table(p / f"round_{r:03d}" / "heldout_candidates.parquet").num_rows
    console = (p.parent / "console.txt").read_text()
    assert "grade_" in console and "(G)" in console and "(T)" in console  # who decided each column
    # the last round only: the stress suite against the teachers that trained the final policy (rules, the
    # refitted reward model on its Ray actor), its figures in metrics.json and the console, the pairs in stress.json
    metrics = json.loads((p / "metrics.json").read_text())["rounds"]
    assert [("stack_hacks" in m) for m in metrics] == [False] * ROUNDS + [True]
    stress = json.loads((p / "stress.json").read_text())
    assert stress["round"] == ROUNDS and stress["overall"]["per_100"] == metrics[-1]["stack_hacks"]
    assert len(stress["hacked"]) == stress["overall"]["hacks"]
    assert "reward-hack stress suite against the teachers that trained the final policy" in console
    report = json.loads((p / "safety_report.json").read_text())
    assert report["epochs"] == ROUNDS and "convergence_epoch" in report
    AutoModelForCausalLM.from_pretrained(p / "policy")  # the exported policy is a plain HF directory
    assert json.loads((p / "state.json").read_text())["completed_rounds"] == ROUNDS


def test_an_interrupted_round_is_rerun_on_resume(finished_run, monkeypatch):
    """Round 3 fails after its update checkpointed; --resume reruns it from version 3.

    By then round 3's experience was made ahead of round 2's end: state.json must still hold the
    replay pool as round 2 left it.
    """
    from ouro_ray.loop import driver
    from ouro_ray.loop.run import open_run, run

    run_dir, _ = finished_run
    console = Console(file=open(run_dir.path.parent / "console-resume.txt", "w"), width=160)
    original = driver.Loop.evaluate

    def crash(self, r):
        if r == ROUNDS + 2:  # the measurement after round 3's update
            raise KeyboardInterrupt(f"simulated interruption after round {r - 1}'s update")
        return original(self, r)

    monkeypatch.setattr(driver.Loop, "evaluate", crash)
    # the fixture's run checked the stress suite; this extension skips it (its final measurement, ~10 s)
    cfg, same = open_run(None, [f"rounds={ROUNDS + 2}", "evaluation.stress=false"], None, str(run_dir.path))
    with pytest.raises(KeyboardInterrupt):
        run(cfg, same, console=console)
    state = json.loads((run_dir.path / "state.json").read_text())
    assert state["completed_rounds"] == ROUNDS + 1 and state["policy_version"] == ROUNDS + 1  # round 3 did not count
    assert state["reward_model_version"] == ROUNDS  # refits of rounds 1 and 2; round 3's, made ahead, not counted
    from ouro_ray.loop.replay import clusters
    from ouro_ray.loop.roles import checkpoint_version

    replay2 = json.loads((run_dir.path / f"round_{ROUNDS:03d}" / "replay.json").read_text())
    assert clusters(state["pool"]) == replay2["pool_clusters"]  # not the pool round 3 went on to change
    versions = {checkpoint_version(c) for c in (run_dir.path / "train" / "learner").glob("checkpoint_*") if c.is_dir()}
    assert ROUNDS + 2 in versions  # round 3's checkpoint exists: resume must drop it, not train on top of it
    monkeypatch.setattr(driver.Loop, "evaluate", original)
    cfg, same = open_run(None, [], None, str(run_dir.path))
    assert cfg.rounds == ROUNDS + 2 and not cfg.evaluation.stress  # the overrides were kept in RUN_DIR/config.yaml
    history = run(cfg, same, console=console)
    assert [m["round"] for m in history] == list(range(ROUNDS + 3))
    assert history[-1]["policy_version"] == ROUNDS + 2  # one update for round 3, not two
    assert "stack_hacks" not in history[-1]  # evaluation.stress=false was kept through the resume
    # and one reward-model refit for round 3, not two: the unfinished round's refit was dropped on resume
    assert json.loads((run_dir.path / "state.json").read_text())["reward_model_version"] == ROUNDS + 1
    candidates = pq.read_table(run_dir.path / f"round_{ROUNDS + 1:03d}" / "candidates.parquet")
    assert set(candidates.column("policy_version").to_pylist()) == {ROUNDS + 1}  # resumed: the latest policy
    state = json.loads((run_dir.path / "state.json").read_text())
    assert state["completed_rounds"] == ROUNDS + 2
    timeline = [json.loads(line) for line in (run_dir.path / "timeline.jsonl").read_text().splitlines()]
    assert sorted({t["round"] for t in timeline}) == list(range(-1, ROUNDS + 2))
    assert [t["round"] for t in timeline if t["stage"] == "update"] == list(range(ROUNDS + 2))  # each once
