"""Rollout and reference roles in process: candidates' shape, EOS, logprobs, and exact agreement."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from _roles import reference_cfg, rollout_cfg

from actors.reference import ReferenceGroup
from actors.rollout import RolloutGroup
from ouro_ray.config.roles import SamplingConfig
from ouro_ray.data import BatchSchemaError, validate_batch
from ouro_ray.rollout.transformers_backend import left_pad, trim_at_eos


def test_trim_at_eos_keeps_the_first_eos_and_drops_the_rest():
    generated = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert trim_at_eos(generated, [2]).tolist() == [
        [True, True, False, False], [True, True, True, True], [True, False, False, False]]


def test_left_pad_right_aligns_prompts():
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[True, True, True], [False, False, True]]


@pytest.fixture(scope="module")
def local_rollout(tiny_model_dir):
    group = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0)
    yield group
    group.close()


def test_candidates_have_n_per_prompt_valid_tokens_and_version_0(local_rollout, prompts):
    cands = local_rollout.generate(prompts, seed=1)
    validate_batch(cands, "candidates", "test")  # schema and row rules: same lengths, logprobs <= 0
    assert cands.num_rows == prompts.num_rows * 2
    assert cands.column("prompt_id").to_pylist() == ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"]
    assert cands.column("candidate_id").to_pylist()[:2] == ["c0", "c1"]
    assert set(cands.column("policy_version").to_pylist()) == {0}
    lengths = [len(t) for t in cands.column("token_ids").to_pylist()]
    assert all(1 <= n <= 16 for n in lengths)
    for row in cands.column("token_ids").to_pylist():  # EOS (id 2) only ever as the last token
        assert 2 not in row[:-1]


def test_same_seed_same_candidates_other_seed_differs(local_rollout, prompts):
    a, b = local_rollout.generate(prompts, seed=5), local_rollout.generate(prompts, seed=5)
    c = local_rollout.generate(prompts, seed=6)
    assert a.column("token_ids").to_pylist() == b.column("token_ids").to_pylist()
    assert a.column("token_ids").to_pylist() != c.column("token_ids").to_pylist()


def test_greedy_candidates_are_the_argmax_continuation(local_rollout, prompts):
    greedy = local_rollout.generate(prompts, seed=1, sampling=SamplingConfig(n=1, temperature=0.0, max_new_tokens=8))
    again = local_rollout.generate(prompts, seed=2, sampling=SamplingConfig(n=1, temperature=0.0, max_new_tokens=8))
    assert greedy.column("token_ids").to_pylist() == again.column("token_ids").to_pylist()  # seed plays no part


def test_beam_search_returns_n_beams_per_prompt(local_rollout, prompts):
    beams = local_rollout.generate(prompts.slice(0, 2), seed=1,
                                   sampling=SamplingConfig(n=2, num_beams=3, max_new_tokens=6))
    assert beams.column("candidate_id").to_pylist() == ["c0", "c1", "c0", "c1"]
    validate_batch(beams, "candidates", "test")


def test_reference_logprobs_equal_the_rollouts_at_version_0(local_rollout, tiny_model_dir, prompts):
    cands = local_rollout.generate(prompts, seed=3)
    ref = ReferenceGroup(tiny_model_dir, reference_cfg(num_workers=0)).logprobs(cands)
    assert ref.column("candidate_id").to_pylist() == cands.column("candidate_id").to_pylist()
    policy = np.concatenate(cands.column("logprobs").to_pylist())
    reference = np.concatenate(ref.column("ref_logprobs").to_pylist())
    # Same weights, same forward function: equal up to float rounding (the reference batches rows
    # differently, so padding widths differ), so PPO's KL starts at 0.
    np.testing.assert_allclose(policy, reference, rtol=0, atol=1e-5)
    assert (policy <= 0).all() and (policy < 0).any()


def test_a_bad_batch_is_refused_naming_column_producer_and_role(local_rollout):
    bad = pa.table({"prompt_id": ["p0"], "text": ["hi"], "label": ["safe"]})
    with pytest.raises(BatchSchemaError) as err:
        local_rollout.generate(bad, seed=0)
    assert "prompt" in str(err.value)
    assert any("rollout" in note for note in err.value.__notes__)
