"""build_roles: the order groups start in, and no half-built set left behind when one fails (no Ray)."""

from __future__ import annotations

import pytest

from ouro_ray.config import load_config


class Fake:
    def __init__(self, name: str, log: list[str], fail: bool = False):
        if fail:
            log.append(f"{name} failed")
            raise RuntimeError(f"{name} could not start; fix: the test says so")
        self.name, self.log, self.version = name, log, 0
        log.append(f"{name} started")

    def close(self) -> None:
        self.log.append(f"{self.name} closed")


def patch_groups(monkeypatch, log: list[str], failing: str | None):
    import actors.judge
    import actors.learner_group
    import actors.reference
    import actors.rollout
    import actors.weights

    for module, cls, name in ((actors.rollout, "RolloutGroup", "rollout"), (actors.reference, "ReferenceGroup",
                                                                             "reference"),
                              (actors.learner_group, "LearnerGroup", "learner"), (actors.judge, "JudgeGroup", "judges")):
        monkeypatch.setattr(module, cls, lambda *a, _n=name, **k: Fake(_n, log, fail=_n == failing))
    monkeypatch.setattr(actors.weights, "start_weight_store", lambda *a, **k: "store")
    monkeypatch.setattr("ouro_ray.loop.roles.await_version", lambda *a, **k: log.append("awaited"))


def test_the_learner_starts_before_the_judges_and_its_weights_are_awaited_last(monkeypatch, tmp_path):
    from ouro_ray.loop.roles import build_roles

    log: list[str] = []
    patch_groups(monkeypatch, log, failing=None)
    cfg = load_config("configs/tiny.yaml", ["learner.num_workers=0", "rollout.workers.num_workers=0"])
    roles = build_roles(cfg, "model", tmp_path, 0, lambda m: None)
    assert log == ["rollout started", "reference started", "learner started", "judges started", "awaited"]
    assert (roles.rollout.name, roles.reference.name, roles.learner.name, roles.judges.name) == (
        "rollout", "reference", "learner", "judges")


@pytest.mark.parametrize("failing", ["reference", "judges"])
def test_a_group_that_fails_to_start_takes_the_started_ones_down_with_it(monkeypatch, tmp_path, failing):
    from ouro_ray.loop.roles import build_roles

    log: list[str] = []
    patch_groups(monkeypatch, log, failing=failing)
    cfg = load_config("configs/tiny.yaml", ["learner.num_workers=0", "rollout.workers.num_workers=0"])
    with pytest.raises(RuntimeError, match=f"{failing} could not start"):
        build_roles(cfg, "model", tmp_path, 0, lambda m: None)
    started = [e.split()[0] for e in log if e.endswith("started")]
    closed = [e.split()[0] for e in log if e.endswith("closed")]
    assert started and closed == started[::-1]  # every started group closed, newest first
    assert "awaited" not in log


def test_a_close_that_fails_is_logged_and_the_start_up_error_is_still_the_one_raised(monkeypatch, tmp_path, caplog):
    from ouro_ray.loop.roles import build_roles

    log: list[str] = []
    patch_groups(monkeypatch, log, failing="judges")
    monkeypatch.setattr(Fake, "close", lambda self: (_ for _ in ()).throw(OSError(f"{self.name} would not close")))
    cfg = load_config("configs/tiny.yaml", ["learner.num_workers=0", "rollout.workers.num_workers=0"])
    with caplog.at_level("WARNING", logger="ouro_ray.loop.roles"), \
            pytest.raises(RuntimeError, match="judges could not start"):
        build_roles(cfg, "model", tmp_path, 0, lambda m: None)
    closing = [r.getMessage() for r in caplog.records if "after a failed start" in r.getMessage()]
    assert len(closing) == 3 and "learner would not close" in closing[0] and "rollout would not close" in closing[2]


def test_roles_reserving_more_cpus_than_the_cluster_has_are_named_before_anything_waits(ray_cluster):
    from ouro_ray.loop.roles import cpu_demand, cpu_shortfall

    # the session cluster has 2 CPUs: rollout 1 + reference 1 + learner 1 + judges 0.5 + reward model 0.5 = 4
    big = load_config(None, ["rollout.workers.num_cpus=1", "reference.workers.num_cpus=1", "learner.num_workers=1",
                             "judges.min_workers=1", "reward_model.refit_every=1"])
    assert cpu_demand(big) == {"rollout": 1.0, "reference": 1.0, "learner": 1.0, "judges": 0.5, "reward_model": 0.5}
    warning = cpu_shortfall(big)
    assert warning and "reserve 4 CPUs" in warning and "reward_model 0.5" in warning and "cluster.num_cpus" in warning
    small = load_config(None, ["rollout.workers.num_cpus=0.5", "reference.workers.num_cpus=0.25", "learner.num_workers=1",
                               "learner.num_cpus_per_worker=0.5", "judges.min_workers=1", "judges.num_cpus=0.25"])
    assert cpu_shortfall(small) is None


def test_a_batch_generated_with_stale_weights_is_made_again_after_the_learner_publishes():
    from types import SimpleNamespace

    import pyarrow as pa

    from ouro_ray.loop.roles import generate_current

    versions, published = [0, 2], []

    class Rollout:
        def generate(self, prompts, seed, sampling=None):  # a restarted worker that found the store empty, then not
            return pa.table({"policy_version": pa.array([versions.pop(0)] * 2, pa.int64())})

    roles = SimpleNamespace(learner=SimpleNamespace(version=2), rollout=Rollout(),
                            ensure_weights=lambda: published.append(True))
    assert generate_current(roles, None, seed=0).column("policy_version").to_pylist() == [2, 2]
    assert len(published) == 2  # the store was checked before each attempt
    stuck = SimpleNamespace(learner=SimpleNamespace(version=3), ensure_weights=lambda: None,
                            rollout=SimpleNamespace(generate=lambda p, seed, sampling=None: pa.table(
                                {"policy_version": pa.array([1], pa.int64())})))
    with pytest.raises(RuntimeError, match="kept generating with policy version 1 while the learner holds 3"):
        generate_current(stuck, None, seed=0)
