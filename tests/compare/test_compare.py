"""`ouro compare`: each arm's wiring, the figures and the human-minute accounting by hand, intervals over
seeds, the files, resuming per arm, bad input; and one real quick RLHF arm on the small world (a person's
pairs → a refitted reward model → PPO)."""

from __future__ import annotations

import json
import math

import pytest

from ouro_ray.compare import report
from ouro_ray.compare.arms import arm_overrides, run_figures
from ouro_ray.compare.run import check_arms, compare
from ouro_ray.config import load_config
from ouro_ray.loop.rundir import RunDir


def test_each_arm_changes_only_who_teaches():
    rlhf, rlaif, ouro = (load_config(None, arm_overrides(a, 12)) for a in ("rlhf", "rlaif", "ouroboros"))
    # RLHF: no rule, AI or constitution teacher; the reward model, refitted on a person's pairs only
    assert not rlhf.judges.rules and not rlhf.judges.llm.enabled and not rlhf.judges.constitution.enabled
    assert rlhf.reward_model.refit_every == 1 and rlhf.reward_model.pair_sources == ("human",)
    assert rlhf.human.simulated and rlhf.human.pairs_per_round == 12 and rlhf.scoring.spot_checks == 0
    # RLAIF: the AI judge and the constitution; no person, no rule teacher, no reward model, no replay
    assert not rlaif.judges.rules and rlaif.judges.llm.enabled and rlaif.judges.constitution.enabled
    assert not rlaif.human.simulated and rlaif.reward_model.refit_every == 0 and rlaif.replay.share == 0
    # Ouroboros: everything, the person on the review queue only
    assert ouro.judges.rules and ouro.judges.llm.enabled and ouro.reward_model.refit_every == 1
    assert ouro.human.simulated and ouro.human.pairs_per_round == 0 and ouro.replay.share > 0
    same = ("rounds", "seed", "loop", "learner", "rollout", "evaluation")
    for key in same:  # the same compute: nothing else differs (the learner's algo is PPO in the base config too)
        assert getattr(rlaif, key) == getattr(ouro, key), key


def _history(minutes: list[float], pairs: list[int], grade: float) -> list[dict]:
    rounds = [{"round": 0, "fact_f1": 0.5, "grade_voice": 0.4, "grade_safety": 0.6, "grade_over_refusal": 0.2,
               "reward_hacks": 10.0}]
    for r, (m, p) in enumerate(zip(minutes, pairs), 1):
        rounds.append({"round": r, "fact_f1": grade, "grade_voice": grade, "grade_safety": 0.9,
                       "grade_over_refusal": 0.1, "reward_hacks": 5.0, "win_rate": 0.7, "human_minutes": m, "stack_hacks": 2.5,
                       "rm_pairs_new": p})
    return rounds


def test_figures_and_human_minutes_per_1k_pairs_by_hand():
    history = _history([3.0, 2.0], [40, 60], 0.8)
    final, sft = run_figures(history), run_figures(history, final=False)
    # 5 human minutes over 100 pairs kept for training: 5 / 100 · 1000 = 50 minutes per 1k pairs
    assert final["human_minutes_per_1k_pairs"] == pytest.approx(50.0)
    assert final["fact_f1"] == pytest.approx(80.0) and final["persona"] == pytest.approx(80.0)
    assert final["reward_hacks"] == 5.0 and final["win_rate"] == 0.7 and final["stack_hacks"] == 2.5
    assert sft["stack_hacks"] is None  # no teacher stack trained the initial policy
    assert sft["fact_f1"] == pytest.approx(50.0) and sft["win_rate"] == 0.5 and sft["human_minutes_per_1k_pairs"] is None
    assert run_figures(_history([0.0], [0], 0.8))["human_minutes_per_1k_pairs"] is None  # no pairs: undefined


def test_interval_over_seeds_by_hand():
    # values 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027 → half-width 4.3027 / √3 = 2.4842
    v = report.interval([1.0, 2.0, 3.0])
    assert v["mean"] == 2.0 and v["n"] == 3
    assert v["ci"] == pytest.approx([2 - 4.30265 / math.sqrt(3), 2 + 4.30265 / math.sqrt(3)], abs=1e-4)
    assert report.interval([4.0])["ci"] is None and report.interval([None])["mean"] is None


def test_compare_writes_the_table_and_resumes_per_arm(tmp_path):
    calls = []

    def fake_run(cfg, run_dir: RunDir):
        """A finished run: its figures follow the arm (who teaches) and the seed."""
        calls.append((cfg.judges.llm.enabled, cfg.seed))
        grade = 0.6 + 0.1 * cfg.judges.llm.enabled + 0.01 * cfg.seed
        history = _history([1.0] * cfg.rounds, [20] * cfg.rounds, grade)
        run_dir.write_json("metrics.json", {"rounds": history})
        run_dir.save_state({**run_dir.state(), "completed_rounds": cfg.rounds})
        return history

    said = []
    out = tmp_path / "cmp"
    result = compare(None, ["rounds=2"], ["sft", "rlhf", "rlaif"], 3, out, quick=False, say=said.append,
                     run_fn=fake_run)
    assert len(calls) == 6 and sorted({s for _, s in calls}) == [0, 1, 2]  # 2 trained arms × 3 seeds
    table = result["arms"]
    assert list(table) == ["sft", "rlhf", "rlaif"]
    assert table["rlaif"]["fact_f1"]["mean"] == pytest.approx(71.0) and table["rlaif"]["fact_f1"]["n"] == 3
    assert table["sft"]["fact_f1"]["mean"] == pytest.approx(50.0)  # round 0 of the runs
    # 2 human minutes over 40 pairs per run: 50 minutes per 1k pairs
    assert table["rlhf"]["human_minutes_per_1k_pairs"]["mean"] == pytest.approx(50.0)
    for ext in ("json", "csv", "md", "png"):
        assert (out / f"compare.{ext}").stat().st_size > 0
    md = (out / "compare.md").read_text()
    assert "| rlaif | 71.0 [" in md and "The paper's table" in md and "| ouroboros |" not in md.split("## The")[0]
    assert "45.0 s a score (configured), 20.0 s a pair (configured)" in md  # where the human minutes come from
    assert json.loads((out / "compare.json").read_text())["per_seed"]["rlhf"][2]["fact_f1"] == pytest.approx(62.0)

    # run again: every arm and seed finished before is read, none rerun
    compare(None, ["rounds=2"], ["sft", "rlhf", "rlaif"], 3, out, quick=False, say=said.append, run_fn=fake_run)
    assert len(calls) == 6 and sum("finished before, read" in m for m in said) == 6


def test_bad_arms_and_seeds_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="unknown arm.*rlxf.*fix"):
        check_arms(["rlxf"], 3)
    with pytest.raises(ValueError, match="sft alone.*fix: add an arm"):
        check_arms(["sft"], 3)
    with pytest.raises(ValueError, match="--seeds 0"):
        check_arms(["rlaif"], 0)
    from ouro_ray.cli import main

    assert main(["compare", "--arms", "nope"]) == 1  # bad input: EXIT_BAD_DATA, the message on stderr
