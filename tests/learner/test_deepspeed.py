"""DeepSpeed ZeRO on CPU: in process it takes exactly the plain learner's steps (ZeRO-3; ZeRO-2 resumes its
optimizer partitions); ZeRO-3 on Ray Train with 2 CPU workers (gloo) learns, publishes whole weights (gathered
from its partitions), checkpoints, and takes exactly the steps DDP takes. ZeRO-2 on two workers was checked the
same way until the suite's time ran short: its sharding is the optimizer's alone, which the resume test covers.

DeepSpeed's CPU ops (its shared-memory collective, and CPU Adam for optimizer offload) are JIT-built by
``make install`` (about 60 s on 2 cores) into ``~/.cache/ouro-ray/torch_extensions/<environment>`` (see
``ouro_ray.learner.strategy.build_cpu_ops``); the tests load them from there.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (CPU: make install adds it; GPU: the gpu extra)")

from actors.learner_group import LearnerGroup  # noqa: E402
from actors.weights import start_weight_store  # noqa: E402
from ouro_ray.config.learner import DeepSpeedConfig, DPOConfig, LearnerConfig, OptimConfig  # noqa: E402
from ouro_ray.models.load import load_causal_lm  # noqa: E402
from ouro_ray.weights import named_tensors  # noqa: E402

UPDATES = 2


def learner_cfg(strategy: str, stage: int = 2, num_workers: int = 2) -> LearnerConfig:
    # 54 training pairs over 2 ranks: 27 rows, 4 micro-batches of 8 per rank; grad_accum 3 makes
    # groups of 3 and 1, so the short last group must step too (as in DDP). In process: 7 micro-batches.
    return LearnerConfig(algo="dpo", num_workers=num_workers, num_cpus_per_worker=0.5, strategy=strategy,
                         deepspeed=DeepSpeedConfig(stage=stage),
                         optim=OptimConfig(lr=1e-3, micro_batch_size=8, grad_accum=3), dpo=DPOConfig(beta=0.1))


def test_make_install_built_the_cpu_ops_for_this_environment_alone(monkeypatch):
    """The first engine on a machine compiles nothing: ``make install`` built DeepSpeed's CPU ops (first in this
    file, before any engine could build them) into a folder of this environment's own."""
    from deepspeed.accelerator import get_accelerator

    from ouro_ray.learner.strategy import build_cpu_ops, extensions_dir

    if get_accelerator().device_name() != "cpu":
        pytest.skip(f"DeepSpeed's accelerator here is {get_accelerator().device_name()!r}: make install builds the CPU "
                    "ops on CPU machines only")
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    ours = extensions_dir()
    wanted = [ours / "deepspeed_shm_comm" / "deepspeed_shm_comm.so", ours / "cpu_adam" / "cpu_adam.so"]
    missing = [str(p) for p in wanted if not p.is_file()]
    assert not missing, f"not built: {missing}; fix: make install (it runs strategy.build_cpu_ops)"
    assert build_cpu_ops() == wanted  # found built, in the same place
    monkeypatch.setattr("sys.prefix", "/another/venv")
    assert extensions_dir() != ours and extensions_dir().parent == ours.parent


def run_updates(cfg: LearnerConfig, model_dir: str, batch, storage, prefix: str):
    """(metrics of each update, the last published payload, the latest checkpoint) of a fresh learner."""
    import ray

    store = start_weight_store(prefix=prefix, namespace="ouro-test")
    group = LearnerGroup(cfg, model_dir, storage_path=str(storage), weight_store=store, prefix=prefix)
    try:
        metrics = [group.update(batch) for _ in range(UPDATES)]
        assert ray.get(store.version.remote(), timeout=30) == UPDATES
        payload = ray.get(ray.get(store.latest.remote(), timeout=30)[1][0], timeout=30)
        return metrics, payload, group.latest_checkpoint()
    finally:
        group.close()
        ray.kill(store)


def test_zero3_in_process_takes_the_plain_learners_steps(tiny_model_dir, preference_batches, tmp_path):
    # The in-process DeepSpeed learner makes a one-process gloo group, which stays for the session.
    train, _ = preference_batches
    plain = LearnerGroup(learner_cfg("ddp", num_workers=0), tiny_model_dir, storage_path=str(tmp_path / "plain"))
    zero3 = LearnerGroup(learner_cfg("deepspeed", 3, num_workers=0), tiny_model_dir, storage_path=str(tmp_path / "z3"))
    for _ in range(UPDATES):
        expected, got = plain.update(train), zero3.update(train)
        for key in ("loss", "reward_margin", "grad_norm"):
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, err_msg=key)


@pytest.fixture(scope="module")
def ddp_metrics(ray_cluster, tiny_model_dir, preference_batches, tmp_path_factory):
    train, _ = preference_batches
    metrics, _, _ = run_updates(learner_cfg("ddp"), tiny_model_dir, train, tmp_path_factory.mktemp("ddp"), "t-ds-ddp")
    return metrics


@pytest.mark.ray
@pytest.mark.parametrize("stage", [3])
def test_zero_on_two_cpu_workers_learns_publishes_and_checkpoints_like_ddp(
        stage, ray_cluster, tiny_model_dir, preference_batches, ddp_metrics, tmp_path):
    train, _ = preference_batches
    metrics, payload, ckpt = run_updates(learner_cfg("deepspeed", stage), tiny_model_dir, train, tmp_path,
                                         f"t-zero{stage}")
    first, last = metrics[0], metrics[-1]
    assert [m["version"] for m in metrics] == [1.0, 2.0] and payload.version == UPDATES
    assert last["loss"] < first["loss"] and last["reward_margin"] > first["reward_margin"] + 0.2
    assert all(np.isfinite(m["grad_norm"]) and m["grad_norm"] > 0 for m in metrics)

    # Same seeds, same shards, same accumulation groups: ZeRO takes DDP's steps (float rounding aside).
    for ours, ddp in zip(metrics, ddp_metrics):
        for key in ("loss", "reward_margin", "grad_norm"):
            np.testing.assert_allclose(ours[key], ddp[key], rtol=1e-4, err_msg=key)

    # Published weights are whole (ZeRO-3 gathers its partitions) and moved away from the start.
    base, _ = load_causal_lm(tiny_model_dir)
    start, published = base.state_dict(), dict(named_tensors(payload))
    assert {k: tuple(v.shape) for k, v in published.items()} == {k: tuple(v.shape) for k, v in start.items()}
    assert any(not torch.equal(published[k], start[k]) for k in start)

    # The last checkpoint holds the same whole weights, loadable without DeepSpeed.
    from transformers import AutoModelForCausalLM

    assert ckpt is not None and json.loads((ckpt / "learner_state.json").read_text())["version"] == UPDATES
    reloaded = AutoModelForCausalLM.from_pretrained(str(ckpt / "policy")).state_dict()
    for name, tensor in published.items():
        torch.testing.assert_close(reloaded[name], tensor, rtol=0, atol=0, msg=name)


def test_zero2_checkpoint_resumes_optimizer_partitions_with_the_identical_next_loss(
        tiny_model_dir, preference_batches, tmp_path):
    train, _ = preference_batches
    cfg = learner_cfg("deepspeed", 2, num_workers=0)
    straight = LearnerGroup(cfg, tiny_model_dir, storage_path=str(tmp_path / "a"))
    straight.update(train)
    expected = straight.update(train)
    first = LearnerGroup(cfg, tiny_model_dir, storage_path=str(tmp_path / "b"))
    first.update(train)
    ckpt = first.latest_checkpoint()
    assert (ckpt / "deepspeed" / "ouro").is_dir()  # the ZeRO optimizer partitions are in the checkpoint
    resumed = LearnerGroup(cfg, tiny_model_dir, storage_path=str(tmp_path / "b"))
    again = resumed.update(train)
    # Adam's moments came back: a restarted optimizer would take a different second step.
    np.testing.assert_allclose(again["loss"], expected["loss"], rtol=1e-6)
    assert again["version"] == 2.0


@pytest.mark.parametrize("stage,offload_param", [(3, True)])  # the optimizer and the parameters both offloaded
def test_zero_offload_steps_on_cpu_adam_like_the_plain_learner(stage, offload_param, tiny_model_dir, preference_batches,
                                                               tmp_path):
    train, _ = preference_batches
    offload = LearnerConfig(algo="dpo", num_workers=0, strategy="deepspeed",
                            deepspeed=DeepSpeedConfig(stage=stage, offload_optimizer=True, offload_param=offload_param),
                            optim=OptimConfig(lr=1e-3, micro_batch_size=8), dpo=DPOConfig(beta=0.1))
    plain = LearnerConfig(algo="dpo", num_workers=0, optim=OptimConfig(lr=1e-3, micro_batch_size=8),
                          dpo=DPOConfig(beta=0.1))
    a = LearnerGroup(offload, tiny_model_dir, storage_path=str(tmp_path / "off"))
    b = LearnerGroup(plain, tiny_model_dir, storage_path=str(tmp_path / "plain"))
    for _ in range(2):
        got, expected = a.update(train), b.update(train)
        # DeepSpeed's CPU Adam is AdamW in fp32: the same steps as torch's AdamW up to rounding.
        np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-3)
