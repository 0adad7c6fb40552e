"""Every role puts its model on the device its resources give it (:func:`ouro_ray.models.device.pick_device`).

The rule runs here on CPU with the GPU ids and CUDA faked. That each role loads through it is checked by
making the rule answer the ``meta`` device (a device torch has on every machine) and looking where each
role's weights went: on a GPU node the same call answers ``cuda``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ouro_ray.models import device as device_mod
from ouro_ray.models.device import assigned_gpu_ids, pick_device

META = torch.device("meta")


def test_an_actor_given_a_gpu_uses_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # Ray narrowed CUDA_VISIBLE_DEVICES to its GPU
    assert pick_device(gpu_ids=[3], cuda_available=True) == torch.device("cuda", 0)


def test_an_actor_without_a_gpu_stays_on_the_cpu_even_on_a_gpu_node():
    # the node's GPUs belong to the roles that reserved them
    assert pick_device(gpu_ids=[], cuda_available=True) == torch.device("cpu")


def test_a_gpu_torch_cannot_use_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"GPU\(s\) \['0'\].*fix: install a CUDA build of torch"):
        pick_device(gpu_ids=["0"], cuda_available=False)


def test_outside_ray_the_driver_uses_what_torch_sees(monkeypatch):
    monkeypatch.setattr(device_mod, "assigned_gpu_ids", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert pick_device(cuda_available=True) == torch.device("cuda", 1)
    assert pick_device(cuda_available=False) == torch.device("cpu")


def test_the_ray_ids_are_read_only_inside_a_ray_worker(monkeypatch):
    # this test process is a driver (or has no Ray at all): not a Ray worker, whatever ray.get_gpu_ids says
    assert assigned_gpu_ids() is None
    monkeypatch.setattr(device_mod, "assigned_gpu_ids", lambda: [0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert pick_device() == torch.device("cuda", 0)


@pytest.mark.ray
def test_a_ray_actor_without_gpus_gets_the_cpu(ray_cluster):
    import ray

    @ray.remote(num_cpus=0)
    def probe():
        from ouro_ray.models.device import assigned_gpu_ids, pick_device

        return assigned_gpu_ids(), str(pick_device())

    assert ray.get(probe.remote(), timeout=120) == ([], "cpu")


# ---------------------------------------------------------------- each role loads through the rule


@pytest.fixture(scope="module")
def policy_dir(tiny_model_dir) -> str:
    return tiny_model_dir


@pytest.fixture
def on_meta(monkeypatch):
    """Every role's device rule answers ``meta``."""
    monkeypatch.setattr(device_mod, "pick_device", lambda *a, **k: META)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def test_the_llm_judge_and_constitution_load_on_the_picked_device(on_meta, policy_dir):
    from actors.judge_worker import build_judges
    from ouro_ray.config.judges import ConstitutionConfig, JudgesConfig, LLMJudgeConfig

    cfg = JudgesConfig(rules=(), llm=LLMJudgeConfig(model=policy_dir), constitution=ConstitutionConfig(enabled=True))
    judges, constitution = build_judges(cfg, policy_dir)
    assert _device(judges[0].model) == META
    assert _device(constitution.writer.backend.model) == META  # the constitution writes with the judge's model


def test_the_reference_and_reward_model_load_on_the_picked_device(monkeypatch, policy_dir):
    import actors.reference
    import actors.reward
    from ouro_ray.config.roles import ReferenceConfig, RewardModelConfig

    monkeypatch.setattr(actors.reference, "pick_device", lambda: META)
    monkeypatch.setattr(actors.reward, "pick_device", lambda: META)
    assert _device(actors.reference.ReferenceWorker(policy_dir, ReferenceConfig()).model) == META
    assert _device(actors.reward.RewardWorker(policy_dir, RewardModelConfig()).model) == META


def test_the_rollout_chat_policy_and_summariser_load_on_the_picked_device(on_meta, policy_dir):
    from ouro_ray.cli.stages import _writer
    from ouro_ray.config import load_config
    from ouro_ray.config.roles import RolloutConfig, SamplingConfig
    from ouro_ray.rollout.select import make_backend
    from ouro_ray.stages.dialogue import ChatPolicy

    backend, _ = make_backend(Path(policy_dir), RolloutConfig(backend="transformers"), seed=0)
    assert _device(backend.model) == META
    assert _device(ChatPolicy(Path(policy_dir), SamplingConfig(), seed=0).backend.model) == META
    writer = _writer(load_config(None, [f"model.path={policy_dir}"]))  # `ouro distill`'s AI summariser
    assert _device(writer.backend.model) == META


def test_the_in_process_learner_trains_on_the_picked_device(on_meta, monkeypatch, policy_dir, tmp_path):
    from actors import learner_group
    from ouro_ray.config.learner import LearnerConfig

    seen = []
    monkeypatch.setattr(learner_group, "pick_device", lambda: seen.append("asked") or torch.device("cpu"))
    group = learner_group.LearnerGroup(LearnerConfig(num_workers=0, algo="dpo"), policy_dir, storage_path=str(tmp_path))
    assert seen == ["asked"] and group._local is not None
    monkeypatch.setattr(learner_group, "pick_device", lambda: pytest.fail("use_gpu: no must not ask"))
    learner_group.LearnerGroup(LearnerConfig(num_workers=0, algo="dpo", use_gpu="no"), policy_dir,
                               storage_path=str(tmp_path / "no"))
