"""The learner: DPO learns in process and on Ray Train (DDP, 2 CPU workers); checkpoints resume exactly."""

from __future__ import annotations

import pytest
import torch
from _heldout import heldout_metrics
from _paths import learner_temp_dirs

from actors.learner_group import LearnerGroup
from actors.weights import WeightStore, start_weight_store
from ouro_ray.config.learner import DPOConfig, LearnerConfig, OptimConfig
from ouro_ray.models.load import load_causal_lm
from ouro_ray.weights import apply_weights


def dpo_cfg(num_workers: int, **kw) -> LearnerConfig:
    return LearnerConfig(algo="dpo", num_workers=num_workers, num_cpus_per_worker=0.5,
                         optim=OptimConfig(lr=1e-3, micro_batch_size=8), dpo=DPOConfig(beta=0.1), **kw)


def _policy_at(model_dir: str, payload) -> torch.nn.Module:
    model, _ = load_causal_lm(model_dir)
    return apply_weights(model, payload)


def test_dpo_in_process_raises_the_heldout_margin_and_publishes_versions(tiny_model_dir, preference_batches, tmp_path):
    train, held = preference_batches
    store = WeightStore()
    group = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path), weight_store=store)
    assert store.version() == 0  # the starting weights are published at once
    base, _ = load_causal_lm(tiny_model_dir)
    before = heldout_metrics(base, held, pad_id=0)
    for _ in range(3):
        metrics = group.update(train)
    after_policy = _policy_at(tiny_model_dir, store.latest()[1][0])
    after = heldout_metrics(after_policy, held, pad_id=0)
    assert store.version() == 3 and metrics["version"] == 3.0
    # Held-out pairs use question forms never trained on: the margin must rise well above its start.
    assert before["margin"] == pytest.approx(0.0, abs=1e-4)
    assert after["margin"] > 1.0 and after["accuracy"] > before["accuracy"] + 0.3
    changed = [not torch.equal(a, b) for a, b in zip(base.state_dict().values(), after_policy.state_dict().values())]
    assert any(changed)


def test_in_process_checkpoint_resumes_with_the_identical_next_loss(tiny_model_dir, preference_batches, tmp_path):
    train, _ = preference_batches
    straight = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path / "a"))
    straight.update(train)
    expected = straight.update(train)
    first = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path / "b"))
    first.update(train)
    ckpt = first.latest_checkpoint()
    assert ckpt is not None and (ckpt / "policy" / "config.json").is_file()
    resumed = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path / "b"))  # finds the checkpoint
    assert resumed.version == 1
    again = resumed.update(train)
    assert again["loss"] == expected["loss"] and again["version"] == 2.0  # optimizer state and seeds restored
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(ckpt / "policy")) is not None  # loads with the Auto classes


@pytest.mark.ray
def test_ray_train_ddp_learner_stays_alive_learns_resumes_and_reads_a_ray_dataset(ray_cluster, tiny_model_dir,
                                                                                    preference_batches, tmp_path):
    import ray

    train, held = preference_batches
    temp_before = learner_temp_dirs()
    store = start_weight_store(prefix="t-learner", namespace="ouro-test")
    group = LearnerGroup(dpo_cfg(2), tiny_model_dir, storage_path=str(tmp_path), weight_store=store, prefix="t-learner")
    try:
        first = group.update(train)
        second = group.update(train)  # the same workers: no new trainer per batch
        assert (first["version"], second["version"]) == (1.0, 2.0)
        assert ray.get(store.version.remote(), timeout=30) == 2
        payload = ray.get(ray.get(store.latest.remote(), timeout=30)[1][0], timeout=30)
        assert heldout_metrics(_policy_at(tiny_model_dir, payload), held, pad_id=0)["margin"] > 0.5
    finally:
        group.close()
    resumed = LearnerGroup(dpo_cfg(2), tiny_model_dir, storage_path=str(tmp_path), weight_store=store, prefix="t-learner")
    try:
        assert resumed.version == 2
        # a Ray Data dataset is split across the two workers (each reads its shard), and the learning goes on
        third = resumed.update(ray.data.from_arrow(train))
        assert third["version"] == 3.0 and third["reward_margin"] > first["reward_margin"]
        # a failure on the workers reaches the driver as its own exception, type and worker traceback kept
        from ouro_ray.data.validate import BatchSchemaError

        with pytest.raises(BatchSchemaError, match="preference_batch") as err:
            resumed.update(train.drop_columns([train.column_names[-1]]), producer="a broken producer")
        notes = "\n".join(err.value.__notes__)
        assert "learner worker traceback (rank 0)" in notes and "validate_batch" in notes
        assert "in role 'learner', actor 'ray-train/rank-0'" in notes
    finally:
        resumed.close()
        ray.kill(store)
    # every checkpoint went to the run's storage; no worker left its local copy in the temp directory
    assert learner_temp_dirs() - temp_before == set()


def test_checkpoint_location_comes_from_config_or_is_required(tiny_model_dir, tmp_path):
    group = LearnerGroup(dpo_cfg(0, storage_path=str(tmp_path / "cfg")), tiny_model_dir)
    assert group.run_dir == (tmp_path / "cfg" / "learner").absolute()
    with pytest.raises(ValueError, match="learner.storage_path"):
        LearnerGroup(dpo_cfg(0), tiny_model_dir)


def test_a_weight_store_that_lost_its_weights_gets_them_published_again(tiny_model_dir, preference_batches, tmp_path):
    train, _ = preference_batches
    store = WeightStore()
    group = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path), weight_store=store)
    group.update(train)
    assert group.republish_if_lost() is False  # the store holds version 1
    store._latest = None  # the store's actor died and restarted empty
    assert group.republish_if_lost() is True and store.version() == 1
    payload = store.latest()[1][0]
    assert payload.version == 1 and payload.arrays  # the learner's current weights, not the base model's


def test_a_ray_dataset_is_read_whole_in_process_and_refused_when_a_worker_would_get_no_rows(ray_cluster, tiny_model_dir,
                                                                                            preference_batches, tmp_path):
    import ray

    from actors.learner_group import _dataset_task

    train, _ = preference_batches
    local = LearnerGroup(dpo_cfg(0), tiny_model_dir, storage_path=str(tmp_path / "local"))
    assert local.update(ray.data.from_arrow(train))["version"] == 1.0  # in process the dataset is read whole
    with pytest.raises(ValueError, match="without rows"):
        _dataset_task(ray.data.from_arrow(train.slice(0, 1)), 2)
