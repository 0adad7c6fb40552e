"""Stage 7's reward model (`reward_model.refit_every`): each round's pairs join a buffer, the reward model
is refitted on it (Bradley-Terry, its own learner) and from then on scores every candidate as one more
teacher, in training and in held-out measurement. In process: stand-in rollout and reference, the
rule teachers, and the session's tiny world as the reward model's trunk."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from _standins import standin_loop

from ouro_ray.eval.heldout import builtin_heldout
from ouro_ray.loop.reward_model import TEACHER
from ouro_ray.loop.roles import build_reward_model


@pytest.fixture
def loop(tmp_path, tiny_world):
    loop = standin_loop(tmp_path / "run", [
        "evaluation.teachers=[none]", "reward_model.refit_every=1", "reward_model.buffer=6",
        "reward_model.workers.num_workers=0", "reward_model.learner_workers=0", "learner.rm_epochs=4",
        "learner.optim.lr=0.003", "rounds=1"])
    loop.model_dir = str(tiny_world.model_dir)
    loop.roles.reward_model = build_reward_model(loop.cfg, str(tiny_world.model_dir), tmp_path / "train", 0)
    yield loop
    loop.roles.reward_model.close()


def _margin(rm, pairs) -> float:
    """Mean raw reward of the chosen answers minus the rejected ones, by the reward group."""
    prompts = pairs.column("prompt").to_pylist()
    chosen = rm.group.score_texts(prompts, pairs.column("chosen").to_pylist())
    rejected = rm.group.score_texts(prompts, pairs.column("rejected").to_pylist())
    return float(np.mean(chosen - rejected))


def test_pairs_refit_and_the_refitted_model_scores_as_a_teacher(loop):
    rm = loop.roles.reward_model
    prompts = builtin_heldout(3, 16)
    candidates = loop.regenerate(prompts, 0)
    rewards, scored = loop.score(candidates, prompts, 0)
    stats = scored["stats"]
    assert stats["rm_refit_skipped"] == 1.0 and stats["rm_buffer"] == 0  # round 0: nothing to refit on yet
    assert TEACHER not in pq.read_table(loop.run.round_dir(0) / "scores.parquet").column("teacher").to_pylist()
    assert "stack_hacks" not in loop.evaluate(0)  # before any refit: no reward-model teacher yet, not the last round
    assert TEACHER not in pq.read_table(loop.run.round_dir(0) / "heldout_scores.parquet").column("teacher").to_pylist()
    pairs = pq.read_table(loop.run.round_dir(0) / "reward_pairs.parquet")
    # the stand-in answers each prompt with the catalog's answer and a hedge: one ranked pair per prompt
    assert stats["rm_pairs_new"] == pairs.num_rows == 16 and set(pairs.column("source").to_pylist()) == {"ranked"}

    _, scored_1 = loop.score(candidates, prompts, 1)  # round 1 starts with a refit on round 0's pairs
    stats = scored_1["stats"]
    assert stats["rm_buffer"] == 6 and stats["rm_buffer_dropped"] == 10  # the newest 6 kept, 10 counted out
    assert rm.version == 1 and stats["rm_version"] == 1.0 and "rm_accuracy" in stats
    assert loop.teachers() and loop.teachers()[0].name == TEACHER
    taught = pq.read_table(loop.run.round_dir(1) / "scores.parquet").to_pylist()
    rm_rows = [r for r in taught if r["teacher"] == TEACHER]
    assert len(rm_rows) == candidates.num_rows and all(r["rater"] == "rm" and -1 <= r["reward"] <= 1 for r in rm_rows)
    measured = loop.evaluate(1)  # held-out measurement uses the same teachers as training
    held = pq.read_table(loop.run.round_dir(1) / "heldout_scores.parquet").column("teacher").to_pylist()
    assert TEACHER in held and measured["round"] == 1
    # the last round: the stress suite against the stack that trained the final policy (rules + reward model)
    stress = json.loads((loop.run.path / "stress.json").read_text())
    assert stress["round"] == 1 and measured["stack_hacks_n"] == stress["overall"]["n"] > 500
    assert measured["stack_hacks"] == stress["overall"]["per_100"] and 0 <= measured["stack_hacks"] <= 100


def test_the_persons_pairs_teach_the_reward_model_in_the_same_round(tmp_path, tiny_world):
    """The RLHF arm's labels: the simulated human compares candidates, the round starts with a refit on its
    choices, and the reward model scores that round already."""
    loop = standin_loop(tmp_path / "rlhf", [
        "evaluation.teachers=[none]", "reward_model.refit_every=1", "reward_model.workers.num_workers=0",
        "reward_model.learner_workers=0", "human.simulated=true", "human.pairs_per_round=10", "human.noise=0",
        "human.budget_minutes=3"])  # 3 minutes at 20 s a pair: 9 of the 10 pairs, the 10th counted over budget
    loop.roles.reward_model = build_reward_model(loop.cfg, str(tiny_world.model_dir), tmp_path / "train", 0)
    try:
        prompts = builtin_heldout(3, 16)
        candidates = loop.regenerate(prompts, 0)
        _, scored = loop.score(candidates, prompts, 0)
        stats = scored["stats"]
        assert stats["human_pairs"] == 9 and stats["rm_buffer"] == 9 and stats["rm_version"] == 1.0
        assert stats["human_minutes"] == 3.0 and loop.person.ledger.refused_for_budget >= 1
        teachers = pq.read_table(loop.run.round_dir(0) / "scores.parquet").column("teacher").to_pylist()
        assert TEACHER in teachers
        pairs = pq.read_table(loop.run.round_dir(0) / "reward_pairs.parquet").to_pylist()
        human = [p for p in pairs if p["source"] == "human"]
        assert len(human) == 9 and all(p["rejected"] == "Maybe, who knows." for p in human)  # a noiseless person
    finally:
        loop.roles.reward_model.close()


def test_pairs_from_a_person_need_a_simulated_one_and_a_reward_model():
    from ouro_ray.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="human.pairs_per_round"):
        load_config(None, ["human.pairs_per_round=5", "human.simulated=true"])


def test_a_refit_ranks_the_buffer_better_than_the_untrained_head(loop):
    """The direction of the effect: the chosen side's margin over the rejected one rises with refits."""
    rm = loop.roles.reward_model
    prompts = builtin_heldout(3, 16)
    candidates = loop.regenerate(prompts, 0)
    rewards, scored = loop.score(candidates, prompts, 0)
    from ouro_ray.loop.reward_model import round_pairs

    pairs = round_pairs(candidates, prompts, rewards, loop.cfg.scoring.pair_margin)
    untrained = _margin(rm, pairs)
    for r in range(3):
        rm.refit(pairs, r)
    assert rm.version == 3 and _margin(rm, pairs) > untrained + 0.5
