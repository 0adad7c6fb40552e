"""The reward-model role: one raw scalar per candidate, pooled at the last real token, hot-swappable
weights (own state dict or the policy's trunk), the same numbers in process and on Ray, and a Judge."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch
from _roles import rollout_cfg

from actors.reward import RewardGroup, RewardWorker, load_reward_model, sequence_tensors
from actors.rollout import RolloutGroup, producer_of
from actors.weights import publish_weights, start_weight_store
from ouro_ray.config.roles import RewardModelConfig, RoleResources
from ouro_ray.data import BatchSchemaError
from ouro_ray.judges.protocol import Judge, JudgeItem
from ouro_ray.judges.reward_model import RewardModelJudge
from ouro_ray.models.load import load_causal_lm, load_tokenizer
from ouro_ray.weights import pack_weights


def reward_cfg(num_workers: int, follow_policy: bool = False, path: str | None = None) -> RewardModelConfig:
    return RewardModelConfig(path=path, follow_policy=follow_policy, workers=RoleResources(
        num_workers=num_workers, num_cpus=0.25, batch_size=3, call_timeout_s=120))


@pytest.fixture(scope="module")
def cands(tiny_model_dir, prompts) -> pa.Table:
    group = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0)
    try:
        return group.generate(prompts, seed=4)  # 8 rows, 2 per prompt
    finally:
        group.close()


def _rewards(table: pa.Table) -> np.ndarray:
    return table.column("reward").to_numpy()


def test_sequence_tensors_concatenate_and_right_pad_by_hand():
    prompt = pa.array([[1, 2], [3]], pa.list_(pa.int32()))
    tokens = pa.array([[4], [5, 6, 7]], pa.list_(pa.int32()))
    ids, mask, last = sequence_tensors(prompt, tokens, pad_id=0)
    assert ids.tolist() == [[1, 2, 4, 0], [3, 5, 6, 7]]
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert last.tolist() == [2, 3]  # P_i + T_i - 1


def test_in_process_scores_are_deterministic_one_per_row(tiny_model_dir, cands):
    a = RewardGroup(tiny_model_dir, reward_cfg(0), seed=0).score(cands)
    b = RewardGroup(tiny_model_dir, reward_cfg(0), seed=0).score(cands)
    other_head = RewardGroup(tiny_model_dir, reward_cfg(0), seed=1).score(cands)
    assert a.num_rows == cands.num_rows
    assert a.column("candidate_id").to_pylist() == cands.column("candidate_id").to_pylist()
    assert a.column("prompt_id").to_pylist() == cands.column("prompt_id").to_pylist()
    assert a.schema.field("reward").type == pa.float32()
    assert set(a.column("reward_model_version").to_pylist()) == {0}
    assert producer_of(a) == "ouro/reward"
    np.testing.assert_array_equal(_rewards(a), _rewards(b))  # the new head is drawn from the seed
    assert np.isfinite(_rewards(a)).all() and np.ptp(_rewards(a)) > 0
    assert not np.allclose(_rewards(a), _rewards(other_head))


def test_the_pooled_position_is_the_last_real_token(tiny_model_dir, cands):
    worker = RewardWorker(tiny_model_dir, reward_cfg(0))
    row = cands.slice(0, 1)
    alone = _rewards(worker.score(row))[0]
    # In a batch with the longest row, row 0 is right-padded further: its score must not move.
    longest = int(np.argmax([len(p) + len(t) for p, t in zip(cands.column("prompt_token_ids").to_pylist(),
                                                             cands.column("token_ids").to_pylist())]))
    batched = _rewards(worker.score(pa.concat_tables([row, cands.slice(longest, 1)])))[0]
    assert batched == pytest.approx(alone, abs=1e-5)
    # Hand check against HF's own forward, which pools the rightmost non-pad token: the unpadded
    # sequence, and the same sequence with 5 pad tokens appended, give our number.
    seq = row.column("prompt_token_ids")[0].as_py() + row.column("token_ids")[0].as_py()
    pad = worker.tokenizer.pad_token_id
    assert pad not in seq
    with torch.no_grad():
        plain = worker.model(input_ids=torch.tensor([seq])).logits[0, 0].item()
        padded = worker.model(input_ids=torch.tensor([seq + [pad] * 5]),
                              attention_mask=torch.tensor([[1] * len(seq) + [0] * 5])).logits[0, 0].item()
    assert plain == pytest.approx(alone, abs=1e-5) and padded == pytest.approx(alone, abs=1e-5)


def test_a_published_reward_model_hot_swaps_and_stamps_its_version(tiny_model_dir, cands):
    store = start_weight_store(local=True)
    group = RewardGroup(tiny_model_dir, reward_cfg(0), seed=0, weight_store=store)
    before = group.score(cands)
    rm, _, new_head = load_reward_model(tiny_model_dir, seed=0)  # the same start, then the head negated
    assert new_head
    with torch.no_grad():
        rm.score.weight.neg_()
    publish_weights(store, rm, version=1)
    after = group.score(cands)  # pulled before the batch
    # raw = w · h_last, so -w gives exactly -raw.
    np.testing.assert_allclose(_rewards(after), -_rewards(before), rtol=0, atol=1e-6)
    assert set(after.column("reward_model_version").to_pylist()) == {1}


def test_follow_policy_loads_the_trunk_and_keeps_the_head(tiny_model_dir, cands):
    worker = RewardWorker(tiny_model_dir, reward_cfg(0, follow_policy=True))
    head = worker.model.score.weight.clone()
    before = _rewards(worker.score(cands))
    policy, _ = load_causal_lm(tiny_model_dir)
    with torch.no_grad():
        policy.model.norm.weight.mul_(2.0)  # the final RMSNorm scales h_last, so raw = w · h_last doubles
    payload = pack_weights(policy, version=2)
    assert "lm_head.weight" in payload.arrays and "score.weight" not in payload.arrays
    assert worker.load_weights(payload) == 2
    torch.testing.assert_close(worker.model.score.weight, head, rtol=0, atol=0)  # head untouched
    torch.testing.assert_close(worker.model.model.norm.weight, policy.model.norm.weight)
    after = worker.score(cands)
    np.testing.assert_allclose(_rewards(after), 2 * before, rtol=1e-5, atol=1e-6)
    assert set(after.column("reward_model_version").to_pylist()) == {2}
    with pytest.raises(ValueError, match="follow_policy"):  # a policy payload without follow_policy is refused
        RewardWorker(tiny_model_dir, reward_cfg(0)).load_weights(payload)


def test_the_judge_adapter_bounds_scores_and_rates_rm(tiny_model_dir, cands):
    group = RewardGroup(tiny_model_dir, reward_cfg(0), seed=0)
    items = [JudgeItem(pid, cid, "What is the Veltra reactor?", text) for pid, cid, text in
             zip(cands.column("prompt_id").to_pylist(), cands.column("candidate_id").to_pylist(),
                 cands.column("text").to_pylist())]
    judge = RewardModelJudge(group, scale=0.5)
    assert isinstance(judge, Judge) and judge.name == "reward-model" and judge.rater == "rm"
    scores = judge.score(items)
    raw = group.score_texts([i.prompt for i in items], [i.candidate for i in items])
    assert [(s.prompt_id, s.candidate_id) for s in scores] == [i.key for i in items]
    for s, r in zip(scores, raw):
        assert s.rater == "rm" and s.teacher == "reward-model"
        assert -1.0 <= s.reward <= 1.0
        assert s.reward == s.scores["reward_model"] == pytest.approx(math.tanh(r / 0.5), abs=1e-6)
    with pytest.raises(ValueError, match="scale"):
        RewardModelJudge(group, scale=0)


def test_a_batch_missing_a_column_is_refused_naming_the_role(tiny_model_dir, cands):
    group = RewardGroup(tiny_model_dir, reward_cfg(0))
    with pytest.raises(BatchSchemaError) as err:
        group.score(cands.drop_columns(["token_ids"]))
    assert "token_ids" in str(err.value)
    assert any("'reward'" in note for note in err.value.__notes__)


def test_a_reward_model_on_another_vocabulary_refuses_token_ids_but_scores_text(tiny_model_dir, cands, tmp_path):
    other = tmp_path / "other-rm"
    shutil.copytree(tiny_model_dir, other)
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.add_tokens(["<veltra>"])  # one more entry: the vocabularies no longer match
    tokenizer.save_pretrained(other)
    foreign = RewardWorker(tiny_model_dir, reward_cfg(0, path=str(other)))
    assert not foreign.shares_policy_tokens
    with pytest.raises(ValueError, match="tokenizer"):
        foreign.score(cands)
    assert foreign.score_texts(["How do I bake bread?"], ["Knead, rest, bake."]).shape == (1,)


@pytest.mark.ray
def test_reward_actors_match_in_process_then_pull_a_published_version(ray_cluster, tiny_model_dir, cands):
    """One group for both checks: starting actors is the slow part on 2 cores."""
    import ray

    local = RewardGroup(tiny_model_dir, reward_cfg(0), seed=0)
    expected = local.score(cands)
    store = start_weight_store(prefix="t-reward", namespace="ouro-test")
    remote = RewardGroup(tiny_model_dir, reward_cfg(2), seed=0, weight_store=store, prefix="t-reward")
    try:
        assert ray.get_actor("t-reward/reward/1", namespace="ouro-test") is not None  # named by role
        before = remote.score(cands)  # batch_size 3: slices of 3, 3, 2 rows over the 2 actors
        assert before.column("candidate_id").to_pylist() == expected.column("candidate_id").to_pylist()
        np.testing.assert_allclose(_rewards(before), _rewards(expected), rtol=0, atol=1e-6)
        texts = cands.column("text").to_pylist()
        np.testing.assert_allclose(remote.score_texts(["Tell me a fact."] * len(texts), texts),
                                   local.score_texts(["Tell me a fact."] * len(texts), texts), rtol=0, atol=1e-6)

        rm, _, _ = load_reward_model(tiny_model_dir, seed=0)
        with torch.no_grad():
            rm.score.weight.neg_()
        publish_weights(store, rm, version=1)  # through the store actor and the object store
        after = remote.score(cands)
        np.testing.assert_allclose(_rewards(after), -_rewards(before), rtol=0, atol=1e-6)
        assert set(after.column("reward_model_version").to_pylist()) == {1}
        assert remote.sync_weights() == [1, 1]
    finally:
        remote.close()
        ray.kill(store)
