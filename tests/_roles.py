"""Small role configs shared by the role tests."""

from __future__ import annotations

from ouro_ray.config.roles import ReferenceConfig, RoleResources, RolloutConfig, SamplingConfig


def rollout_cfg(num_workers: int, n: int = 2, temperature: float = 1.0, batch_size: int = 2) -> RolloutConfig:
    return RolloutConfig(
        backend="transformers",
        sampling=SamplingConfig(n=n, temperature=temperature, max_new_tokens=16),
        workers=RoleResources(num_workers=num_workers, num_cpus=0.25, batch_size=batch_size, call_timeout_s=120),
    )


def reference_cfg(num_workers: int) -> ReferenceConfig:
    return ReferenceConfig(workers=RoleResources(num_workers=num_workers, num_cpus=0.25, batch_size=3, call_timeout_s=120))
