"""The roles as Ray actors: same answers as in process, weight sync, restarts, zero-copy batches."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pytest
import torch
from _roles import reference_cfg, rollout_cfg

from actors.reference import ReferenceGroup
from actors.rollout import RolloutGroup
from actors.weights import publish_weights, start_weight_store
from ouro_ray.config.roles import SamplingConfig
from ouro_ray.models.load import load_causal_lm

pytestmark = pytest.mark.ray
GREEDY = SamplingConfig(n=1, temperature=0.0, max_new_tokens=8)


def _perturbed(model_dir: str) -> torch.nn.Module:
    """The policy with tokens 4 and 10 swapped in its (tied) embedding: greedy output must change.

    The small test model greedily repeats token 4; after the swap it says token 10 instead.
    """
    model, _ = load_causal_lm(model_dir)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[[4, 10]] = emb[[10, 4]].clone()
    return model


@contextmanager
def synced_rollout(model_dir: str, prefix: str, num_workers: int):
    """A weight store and a rollout group that pulls from it; both torn down after the test."""
    import ray

    store = start_weight_store(prefix=prefix, namespace="ouro-test")
    group = RolloutGroup(model_dir, rollout_cfg(num_workers=num_workers), seed=0, weight_store=store, prefix=prefix)
    try:
        yield store, group
    finally:
        group.close()
        ray.kill(store)


def test_rollout_actors_give_the_in_process_table(ray_cluster, tiny_model_dir, prompts):
    local = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0)
    remote = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=2), seed=0, prefix="t-equal")
    try:
        a, b = local.generate(prompts, seed=11), remote.generate(prompts, seed=11)
        for col in ("prompt_id", "candidate_id", "text", "token_ids", "policy_version"):
            assert a.column(col).to_pylist() == b.column(col).to_pylist(), col
        np.testing.assert_allclose(np.concatenate(a.column("logprobs").to_pylist()),
                                   np.concatenate(b.column("logprobs").to_pylist()), atol=1e-6)
        import ray

        assert ray.get_actor("t-equal/rollout/1", namespace="ouro-test") is not None  # named by role
    finally:
        remote.close()


def test_reference_actors_give_the_in_process_logprobs(ray_cluster, tiny_model_dir, prompts):
    cands = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0).generate(prompts, seed=2)
    local = ReferenceGroup(tiny_model_dir, reference_cfg(num_workers=0)).logprobs(cands)
    remote_group = ReferenceGroup(tiny_model_dir, reference_cfg(num_workers=2), prefix="t-ref")
    try:
        remote = remote_group.logprobs(cands)
        assert local.column("ref_logprobs").to_pylist() == remote.column("ref_logprobs").to_pylist()
    finally:
        remote_group.close()


def test_weight_push_reaches_every_worker_and_stamps_the_version(ray_cluster, tiny_model_dir, prompts):
    with synced_rollout(tiny_model_dir, "t-push", num_workers=2) as (store, group):
        before = group.generate(prompts, seed=1, sampling=GREEDY)
        assert set(before.column("policy_version").to_pylist()) == {0}
        payload = publish_weights(store, _perturbed(tiny_model_dir), version=1)
        assert payload.kind == "full"
        after = group.generate(prompts, seed=1, sampling=GREEDY)
        assert set(after.column("policy_version").to_pylist()) == {1}
        assert after.column("token_ids").to_pylist() != before.column("token_ids").to_pylist()
        # An in-process rollout given the same weights generates the same greedy candidates.
        local = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0)
        local.group._local.backend.load_payload(payload)
        assert local.generate(prompts, seed=1, sampling=GREEDY).column("token_ids").to_pylist() == \
            after.column("token_ids").to_pylist()


def test_lora_push_moves_only_the_adapter(ray_cluster, tiny_model_dir, prompts):
    from peft import LoraConfig, get_peft_model

    with synced_rollout(tiny_model_dir, "t-lora", num_workers=1) as (store, group):
        before = group.generate(prompts, seed=1, sampling=GREEDY)
        base, _ = load_causal_lm(tiny_model_dir)
        full_bytes = sum(p.numel() * 4 for p in base.state_dict().values())
        lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():  # a trained-looking adapter: B no longer zero
            g = torch.Generator().manual_seed(0)
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 2.0, generator=g)
        payload = publish_weights(store, lora, version=3)
        assert payload.kind == "lora" and payload.nbytes < full_bytes / 5
        assert all("lora_" in k for k in payload.arrays)
        after = group.generate(prompts, seed=1, sampling=GREEDY)
        assert set(after.column("policy_version").to_pylist()) == {3}
        assert after.column("token_ids").to_pylist() != before.column("token_ids").to_pylist()


def test_a_restarted_rollout_worker_reloads_the_latest_version(ray_cluster, tiny_model_dir, prompts):
    import ray

    with synced_rollout(tiny_model_dir, "t-restart", num_workers=1) as (store, group):
        publish_weights(store, _perturbed(tiny_model_dir), version=4)
        expected = group.generate(prompts, seed=1, sampling=GREEDY)
        ray.kill(group.group.actors[0], no_restart=False)  # Ray restarts it (max_restarts) with its constructor args
        deadline = time.monotonic() + 60
        while True:
            try:
                info = group.info()[0]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert info["version"] == 4  # reloaded in __init__, before taking any work
        again = group.generate(prompts, seed=1, sampling=GREEDY)
        assert again.column("token_ids").to_pylist() == expected.column("token_ids").to_pylist()


def test_arrow_batches_reach_actors_without_copies(ray_cluster):
    import ray

    # Defined here so Ray pickles it by value (workers cannot import test modules).
    class _BufferProbe:
        """Reports on the Arrow buffers it receives (runs as an actor)."""

        def inspect(self, table: pa.Table) -> dict:
            values = table.column("token_ids").chunk(0).values
            view = values.to_numpy(zero_copy_only=True)
            return {"writeable": bool(view.flags.writeable), "address": values.buffers()[1].address,
                    "sum": int(view.sum())}

    rows = [np.arange(i, i + 1000, dtype=np.int32) for i in range(200)]
    table = pa.table({"token_ids": pa.array(rows, pa.list_(pa.int32()))})
    ref = ray.put(table)
    probe = ray.remote(_BufferProbe).options(num_cpus=0).remote()
    try:
        a, b = ray.get([probe.inspect.remote(ref), probe.inspect.remote(ref)], timeout=60)
        # Read-only numpy views: the buffers are the object store's shared memory, not private copies;
        # two reads of one object map the same memory.
        assert a["writeable"] is False and a["address"] == b["address"]
        assert a["sum"] == int(sum(r.sum() for r in rows))
        local = ray.get(ref, timeout=60).column("token_ids").chunk(0).values.to_numpy(zero_copy_only=True)
        assert local.flags.writeable is False
    finally:
        ray.kill(probe)
