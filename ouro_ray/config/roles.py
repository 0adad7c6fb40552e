"""Config of the Ray roles: how many actors, what each needs from the cluster, how they fail over.

A role's resources belong to its deployment, not to its class (STYLE 1): the same ``RolloutWorker``
runs in the driver (``num_workers: 0``), on CPU actors, or on GPU nodes, by config alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param


@dataclass(frozen=True)
class SamplingConfig:
    """How candidates are drawn (stage 4, Regenerate)."""

    n: int = param(4, "candidates per prompt", ge=1)
    temperature: float = param(1.0, "softmax temperature; 0 means greedy", ge=0.0)
    top_p: float = param(1.0, "nucleus sampling: keep the smallest token set with this much probability", gt=0.0, le=1.0)
    top_k: int = param(0, "keep only the k most likely tokens (0: no limit)", ge=0)
    max_new_tokens: int = param(64, "longest candidate in tokens (generation also stops at EOS)", ge=1)
    num_beams: int = param(1, "beam search width (1: sampling); with beams, n <= num_beams", ge=1)

    def checks(self) -> list[tuple[str, str]]:
        """Cross-field problems (keys as in the run config, where this section is ``rollout.sampling``)."""
        key = "rollout.sampling"
        problems = []
        if self.num_beams > 1 and self.n > self.num_beams:
            problems.append((f"{key}.n", f"{key}.n = {self.n}: beam search returns at most num_beams = "
                             f"{self.num_beams} candidates; fix: set n <= num_beams"))
        if self.num_beams > 1 and self.temperature not in (0.0, 1.0):
            problems.append((f"{key}.temperature", f"{key}.temperature = {self.temperature}: beam search is "
                             "deterministic here; fix: leave temperature at 1.0 (or 0)"))
        return problems


@dataclass(frozen=True)
class RoleResources:
    """The actors of one role and what each asks of the cluster."""

    num_workers: int = param(1, "actors in the group; 0 runs the role inside the driver process with the same API", ge=0)
    num_cpus: float = param(1.0, "CPUs each actor reserves", ge=0.0)
    num_gpus: float = param(0.0, "GPUs each actor reserves (fractions share a GPU)", ge=0.0)
    resources: dict[str, float] = param(
        factory=dict, doc="custom Ray resources each actor needs, e.g. {judge_node: 0.01}: the actor only lands on "
        "nodes that declare them", ge=0.0,
    )
    max_restarts: int = param(3, "times Ray restarts a dead actor (-1: forever); it reloads the latest weights first", ge=-1)
    max_task_retries: int = param(3, "times a call on a dead actor is retried on its restarted self (-1: forever)", ge=-1)
    call_timeout_s: float = param(600.0, "longest wait for one slice's answer after the slice before it came back, "
                                         "before the driver fails with a timeout", gt=0.0)
    batch_size: int = param(16, "rows per call: a batch is split into slices of this many rows, spread over the actors", ge=1)


@dataclass(frozen=True)
class VLLMConfig:
    """Engine settings used when the rollout runs on vLLM."""

    gpu_memory_utilization: float = param(0.5, "share of each GPU vLLM may take for weights and KV cache", gt=0.0, le=1.0)
    tensor_parallel_size: int = param(1, "GPUs one engine spans", ge=1)
    max_model_len: int | None = param(None, "longest prompt + candidate in tokens (null: the model's)", ge=1)
    enforce_eager: bool = param(False, "disable CUDA graphs (slower, starts faster)")
    enable_lora: bool = param(False, "serve the learner's LoRA adapters through vLLM's LoRARequest (LoRA runs)")
    max_lora_rank: int = param(16, "largest LoRA rank the engine accepts (enable_lora)", ge=1)


@dataclass(frozen=True)
class RolloutConfig:
    """Stage 4, Regenerate: the rollout group."""

    backend: Literal["auto", "transformers", "vllm"] = param(
        "auto", "generation engine: auto picks vllm when it imports and CUDA is present, else transformers"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = param("float32", "weights' dtype on the rollout workers")
    sampling: SamplingConfig = param(factory=SamplingConfig, doc="how candidates are drawn")
    workers: RoleResources = param(factory=RoleResources, doc="rollout actors")
    vllm: VLLMConfig = param(factory=VLLMConfig, doc="vLLM engine settings (backend vllm)")

    def checks(self) -> list[tuple[str, str]]:
        w, tp = self.workers, self.vllm.tensor_parallel_size
        if self.backend == "vllm" and w.num_workers and w.num_gpus < tp:
            return [("rollout.workers.num_gpus", f"rollout.workers.num_gpus = {w.num_gpus:g}: each vLLM rollout actor "
                     f"runs an engine over rollout.vllm.tensor_parallel_size = {tp} GPUs, so it must reserve them; fix: "
                     f"set rollout.workers.num_gpus={tp}")]
        return []


@dataclass(frozen=True)
class ReferenceConfig:
    """The frozen reference policy that PPO's KL term and DPO's ratios compare against."""

    dtype: Literal["float32", "bfloat16", "float16"] = param("float32", "weights' dtype on the reference workers")
    workers: RoleResources = param(factory=lambda: RoleResources(num_cpus=0.5), doc="reference actors")


@dataclass(frozen=True)
class RewardModelConfig:
    """The learned reward model: a scalar head on a causal LM."""

    path: str | None = param(None, "HF directory of the reward model (null: the policy's initial weights with a new head)")
    dtype: Literal["float32", "bfloat16", "float16"] = param("float32", "weights' dtype on the reward workers")
    follow_policy: bool = param(False, "also load the policy weights the learner publishes (shared-trunk reward model)")
    workers: RoleResources = param(factory=lambda: RoleResources(num_cpus=0.5), doc="reward-model actors")
    refit_every: int = param(0, "ouro run: every this many rounds, refit the reward model on the pair buffer (stage 7) "
                                "and score candidates with it as one more teacher from then on (0: no reward model "
                                "in the loop)", ge=0)
    buffer: int = param(2048, "most preference pairs the buffer keeps (ranked candidates, constitution and human "
                              "pairs; the oldest leave first, counted)", ge=1)
    pair_sources: tuple[Literal["ranked", "constitution", "human"], ...] = param(
        ("ranked", "constitution", "human"), "which pairs the buffer keeps: ranked (each prompt's best over worst "
        "candidate by the round's reward), the constitution's, a person's (RLHF: human only)")
    learner_workers: int = param(0, "Ray Train workers of the refit (0: in the driver); its optimiser and strategy "
                                    "are the learner section's", ge=0)
    scale: float = param(1.0, "the raw reward that maps to tanh(1) ≈ 0.76: the teacher reports tanh(raw / scale)",
                         gt=0.0)

    def checks(self) -> list[tuple[str, str]]:
        if self.refit_every and self.follow_policy:
            return [("reward_model.follow_policy", "reward_model.follow_policy = true loads the policy's trunk into the "
                     "reward model, and reward_model.refit_every trains its own; fix: set one of them off")]
        return []
