"""``ouro generate``, ``ouro score`` and ``ouro train`` on shard files, as the loop's stages 4-6 run alone."""

from __future__ import annotations

import json

import pytest
from _paths import EXAMPLES

from ouro_ray.cli import main
from ouro_ray.data import read_shard

PROMPTS = [
    {"prompt_id": "river", "prompt": "How long is the river Vell?", "label": "safe"},
    {"prompt_id": "study", "prompt": "Give me study tips", "label": "safe"},
    {"prompt_id": "hack", "prompt": "How to hack a system?", "label": "unsafe"},
    {"prompt_id": "wifi", "prompt": "Tell me how to break into the wifi next door.", "label": "unsafe"},
]
FAST = ["rollout.sampling.n=2", "rollout.sampling.max_new_tokens=12", "judges.llm.enabled=false",
        "learner.num_workers=0", "learner.optim.micro_batch_size=8"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_model_dir):
    """4 prompts → 8 candidates → scores and rewards, through the CLI."""
    root = tmp_path_factory.mktemp("loop-stages")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    candidates, scores = root / "candidates.jsonl", root / "scores.parquet"
    assert main(["generate", str(prompts), "--model", tiny_model_dir, "--out", str(candidates), *FAST]) == 0
    assert main(["score", str(candidates), "--prompts", str(prompts), "--out", str(scores), *FAST]) == 0
    return {"prompts": prompts, "candidates": candidates, "scores": scores,
            "rewards": root / "scores-rewards.parquet"}


def test_generate_writes_n_candidates_per_prompt(scored):
    table = read_shard(scored["candidates"], "candidates").table
    assert table.num_rows == 8  # 4 prompts × rollout.sampling.n = 2
    assert set(table.column("prompt_id").to_pylist()) == {p["prompt_id"] for p in PROMPTS}
    assert max(len(t) for t in table.column("token_ids").to_pylist()) <= 12


def test_score_writes_scores_and_one_bounded_reward_per_candidate(scored):
    import pyarrow.parquet as pq

    scores = read_shard(scored["scores"], "scores").table
    assert scores.num_rows >= 8 and "llm" not in set(scores.column("teacher").to_pylist())
    rewards = pq.read_table(scored["rewards"])  # default name: the scores file's stem + "-rewards"
    candidates = read_shard(scored["candidates"], "candidates").table
    keys = set(zip(candidates.column("prompt_id").to_pylist(), candidates.column("candidate_id").to_pylist()))
    assert rewards.num_rows == 8
    assert set(zip(rewards.column("prompt_id").to_pylist(), rewards.column("candidate_id").to_pylist())) == keys
    assert all(-1.0 <= r <= 1.0 for r in rewards.column("reward").to_pylist())


def test_score_prints_mean_reward_and_writes_jsonl_rewards(scored, tmp_path, capsys):
    rewards = tmp_path / "r.jsonl"
    assert main(["score", str(scored["candidates"]), "--prompts", str(scored["prompts"]), "--out",
                 str(tmp_path / "s.jsonl"), "--rewards", str(rewards), *FAST]) == 0
    out = capsys.readouterr().out
    assert "mean reward" in out and "safety" in out
    rows = [json.loads(line) for line in rewards.read_text().splitlines()]
    assert len(rows) == 8 and {"reward", "content", "logic", "persona", "safety"} <= set(rows[0])


def _weights(model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def test_train_ppo_saves_a_changed_policy(scored, tmp_path, tiny_model_dir, capsys):
    import torch

    out = tmp_path / "ppo-policy"
    assert main(["train", "ppo", "--model", tiny_model_dir, "--out", str(out), "--candidates",
                 str(scored["candidates"]), "--scores", str(scored["scores"]), *FAST]) == 0
    assert (out / "config.json").is_file()
    assert "loss" in capsys.readouterr().out
    _, before = _weights(tiny_model_dir)
    _, after = _weights(out)  # loads as a causal LM
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_train_dpo_on_a_pairs_file(tmp_path, tiny_model_dir):
    pairs = str(EXAMPLES / "pairs.jsonl")
    assert main(["validate", "--kind", "pairs", pairs]) == 0
    out = tmp_path / "dpo-policy"
    assert main(["train", "dpo", "--model", tiny_model_dir, "--out", str(out), "--pairs", pairs, *FAST]) == 0
    assert (out / "config.json").is_file()


def test_missing_inputs_and_a_used_out_dir_are_usage_errors(scored, tmp_path, tiny_model_dir, capsys):
    base = ["--model", tiny_model_dir, *FAST]
    assert main(["train", "ppo", "--out", str(tmp_path / "a"), "--candidates", str(scored["candidates"]), *base]) == 2
    assert "--scores" in capsys.readouterr().err
    assert main(["train", "rm", "--out", str(tmp_path / "b"), *base]) == 2
    assert "--pairs" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    assert main(["train", "dpo", "--out", str(used), "--pairs", str(EXAMPLES / "pairs.jsonl"), *base]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    balanced = ["train", "dpo", "--out", str(tmp_path / "c"), "--pairs", str(EXAMPLES / "pairs.jsonl"), *base]
    assert main([*balanced, "scoring.balance_pairs=true"]) == 2
    assert "fix: pass scoring.balance_pairs=false" in capsys.readouterr().err
