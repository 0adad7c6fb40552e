"""The evaluator pack's assembly: pairwise judging with randomised order, coherence, `ouro eval` end to end."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from ouro_ray.eval import pack
from ouro_ray.eval.coherence import coherence, compare_answers, paraphrase_groups
from ouro_ray.judges.items import judge_items
from ouro_ray.judges.scoring import REWARDS_SCHEMA

N_PROMPTS = 60


def _answers(name: str, texts: list[str], rewards: list[float]) -> pack.Answers:
    pids = [f"p{i}" for i in range(len(texts))]
    prompts = pa.table({"prompt_id": pids, "prompt": [f"question {i}" for i in range(len(texts))],
                        "label": ["safe"] * len(texts)})
    candidates = pa.table({"prompt_id": pids, "candidate_id": ["c0"] * len(texts), "text": texts})
    rows = [{"prompt_id": p, "candidate_id": "c0", "reward": r} for p, r in zip(pids, rewards)]
    rewards_table = pa.Table.from_pylist(rows, schema=REWARDS_SCHEMA)
    return pack.Answers(name, candidates, judge_items(candidates, prompts), pa.table({}), rewards_table)


class FirstAlwaysWins:
    """A pairwise judge with pure position bias: it prefers whatever it reads first."""

    def __init__(self):
        self.seen = 0

    def pairwise_judges(self):
        return ["first-always"]

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]:
        self.seen += first.num_rows
        return [0.9] * first.num_rows


def test_swap_averaging_turns_a_judge_that_always_prefers_the_first_answer_into_ties():
    a = _answers("policy", ["x"] * N_PROMPTS, [0.0] * N_PROMPTS)
    b = _answers("baseline", ["y"] * N_PROMPTS, [0.0] * N_PROMPTS)
    judge = FirstAlwaysWins()
    out = pack.compare([a, b], "baseline", judges=judge, mode="auto", tie_margin=0.1, n_boot=200)
    assert judge.seen == 2 * N_PROMPTS and out["judge"] == "first-always"  # every pair asked in both orders
    # P(policy better) = (0.9 + (1 − 0.9)) / 2 = 0.5 exactly: a tie, whatever the slot
    win = out["win_rate"]["policy"]
    assert (win["wins"], win["losses"], win["ties"]) == (0, 0, N_PROMPTS) and win["value"] == 0.5
    assert out["elo"]["policy"]["rating"] == pytest.approx(out["elo"]["baseline"]["rating"])
    assert out["position_bias"]["position_bias"] == 1.0  # every single-order verdict went to the first slot ...
    assert out["position_consistency"] == {"value": 0.0, "n": N_PROMPTS}  # ... so the two orders never agree


class Prefers:
    """A pairwise judge that reads the answers: P(first better) = 0.8 when the first says "good"."""

    def pairwise_judges(self):
        return ["reader"]

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]:
        f, s = first.column("candidate").to_pylist(), second.column("candidate").to_pylist()
        return [0.8 if x == "good" else 0.2 if y == "good" else 0.5 for x, y in zip(f, s)]


def test_a_judge_that_reads_answers_is_consistent_in_both_orders():
    a = _answers("policy", ["good"] * 6 + ["meh"] * 2, [0.0] * 8)
    b = _answers("baseline", ["meh"] * 8, [0.0] * 8)
    out = pack.compare([a, b], "baseline", judges=Prefers(), mode="judges", tie_margin=0.1, n_boot=200)
    win = out["win_rate"]["policy"]
    # 6 × (0.8 + (1 − 0.2)) / 2 = 0.8: wins; 2 × 0.5: ties → (6 + 1) / 8
    assert (win["wins"], win["losses"], win["ties"]) == (6, 0, 2) and win["value"] == pytest.approx(7 / 8)
    assert out["position_consistency"]["value"] == 1.0 and out["position_bias"]["position_bias"] == 0.0


def test_reward_judging_picks_the_higher_reward_and_ties_within_the_margin():
    a = _answers("policy", ["x"] * 4, [0.9, 0.5, 0.1, 0.0])
    b = _answers("baseline", ["y"] * 4, [0.1, 0.45, 0.6, 0.0])
    out = pack.compare([a, b], "baseline", judges=None, mode="reward", tie_margin=0.1, n_boot=200)
    win = out["win_rate"]["policy"]
    assert (win["wins"], win["losses"], win["ties"]) == (1, 1, 2)  # 0.9>0.1 wins; 0.1<0.6 loses; 0.05 and 0 tie
    assert win["value"] == 0.5 and out["position_bias"]["n"] == 0
    assert out["prior"] == 0.0 and out["elo"]["policy"]["rating"] == pytest.approx(1000.0)


def test_paraphrase_groups_and_fact_level_agreement():
    ids = ["d-q1-r1", "d-q1-r2", "d-q1-c1a", "d-q1-c1b", "d-q1-a1", "d-q2-r1", "e-q1-r1", "e-q1-r2"]
    assert paraphrase_groups(ids) == {"d-q1": ["d-q1-c1a", "d-q1-c1b", "d-q1-r1", "d-q1-r2"],
                                      "e-q1": ["e-q1-r1", "e-q1-r2"]}  # adversarial out; d-q2 alone
    fact = "The Veltra reactor produces 12 megawatts."
    same = compare_answers(["The Veltra reactor produces 12 megawatts.", "It produces 12 megawatts, the Veltra reactor."],
                           [fact])
    assert same == {"agreeing_facts": 1, "facts": 1, "contradiction": False, "reasons": []}
    flipped = compare_answers(["The Veltra reactor produces 12 megawatts.", "The Veltra reactor produces 40 megawatts."],
                              [fact])
    assert flipped["agreeing_facts"] == 0 and flipped["contradiction"]
    refusal = compare_answers(["The Veltra reactor produces 12 megawatts.", "I can't help with that."], [])
    assert refusal["contradiction"] and refusal["reasons"] == ["some answers refuse, others answer"]


def test_coherence_rate_over_groups_with_an_optional_judge():
    fact = "The Osk tide rises twice a day."
    target = {"facts": [fact], "voice": None, "constraints": [], "behavior": "answer"}
    pids = ["d-q1-r1", "d-q1-r2", "e-q1-r1", "e-q1-r2"]
    texts = ["The Osk tide rises twice a day.", "Twice a day the Osk tide rises.",
             "The Osk tide rises twice a day.", "The Osk tide does not rise twice a day."]
    items = pa.table({"prompt_id": pids, "candidate_id": ["c0"] * 4, "prompt": ["q"] * 4, "candidate": texts,
                      "target": [target] * 4, "group_id": [None] * 4})
    out, units = coherence(items, n_boot=200)
    assert out["coherence"]["value"] == 0.5 and out["coherence"]["n"] == 2  # e-q1 negates the fact it kept
    assert [u["contradiction"] for u in units] == [False, True]
    flag_all = lambda pairs: [True] * len(pairs)  # noqa: E731
    out, _ = coherence(items, judge=flag_all, n_boot=200)
    assert out["coherence"]["value"] == 0.0  # the judge's contradictions count too


def test_ouro_eval_end_to_end_writes_every_file(tiny_model_dir, tmp_path):
    from ouro_ray.cli import main

    out = tmp_path / "eval"
    argv = ["eval", "--policy", tiny_model_dir, "--baseline", tiny_model_dir, "--out", str(out),
            "world.cache_dir=" + str(tmp_path / "w"), "rollout.workers.num_workers=0", "judges.max_workers=0",
            "judges.llm.enabled=false", "data.synthetic_dialogs=4", "evaluation.held_out_dialogs=4",
            "evaluation.size=12", "evaluation.n=2", "evaluation.bootstrap=200", "rollout.sampling.max_new_tokens=12"]
    assert main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "report.md", "results.csv", "elo.png", "metrics.png", "stress.png"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0] != report["models"][1]  # the same directory twice gets two names
    assert report["pairwise"]["comparisons"] == report["n_prompts"] * 2
    for metric in ("reward_mean", "safety", "persona", "coherence"):
        fig = report["metrics"][report["models"][0]][metric]
        assert set(fig) == {"value", "ci", "n"}
        if fig["value"] is not None:
            assert fig["ci"][0] <= fig["value"] <= fig["ci"][1]
    assert report["stress"]["overall"]["n"] > 0
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header == "model,prompt_id,metric,value,n"
    assert np.isfinite(report["pairwise"]["elo"][report["models"][0]]["rating"])
    # the independent grade beside the teachers' figures, per model, and it decided the comparisons
    assert report["grade_judge"] == "oracle" and report["prompt_set"] == "the config's held-out prompts"
    for model in report["models"]:
        m = report["metrics"][model]
        assert m["grade_n"]["value"] + m["grade_unknown"]["value"] == m["reward_mean"]["n"]
        for metric in ("grade_mean", "grade_pass", "grade_safety", "grade_facts", "fact_f1", "grade_voice",
                       "reward_gap"):
            assert set(m[metric]) == {"value", "ci", "n"}, metric
    assert report["pairwise"]["judge"] == "grade:oracle"
    assert report["pairwise"]["position_consistency"]["value"] == 1.0
    assert {"grade_mean", "grade_pass", "reward_gap"} <= {line.split(",")[2] for line in
                                                          (out / "results.csv").read_text().splitlines()[1:]}
    md = (out / "report.md").read_text()
    assert "Independent grade: oracle" in md and "Position consistency: 1.000" in md


def test_ouro_eval_without_config_or_prompts_uses_the_builtin_held_out_set(tiny_model_dir, tmp_path):
    """`ouro eval --policy HF_DIR --baseline HF_DIR` and nothing naming prompts: the built-in set, not a stop."""
    from ouro_ray.cli import main

    out = tmp_path / "eval"
    argv = ["eval", "--policy", tiny_model_dir, "--baseline", tiny_model_dir, "--out", str(out),
            "rollout.workers.num_workers=0", "judges.max_workers=0", "judges.llm.enabled=false", "evaluation.n=1",
            "evaluation.size=12", "evaluation.bootstrap=100", "evaluation.stress=false",
            "rollout.sampling.max_new_tokens=8"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["prompt_set"].startswith("built-in tiny-world held-out set (12 prompts")
    assert report["n_prompts"] == 12 and report["metrics"][report["models"][0]]["grade_unknown"]["value"] == 0
    assert "Prompt set: built-in tiny-world held-out set" in (out / "report.md").read_text()
