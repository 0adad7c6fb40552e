"""Config of stage 6, Update: the learner on Ray Train (DPO or PPO), its strategy, LoRA and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the step's gradient handling."""

    lr: float = param(1e-4, "peak learning rate", gt=0.0, lt=1.0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0.0)
    betas: tuple[float, ...] = param((0.9, 0.95), "AdamW betas (two numbers)")
    max_grad_norm: float = param(1.0, "clip the global gradient norm to this (0: no clipping)", ge=0.0)
    micro_batch_size: int = param(4, "rows per forward/backward on each worker", ge=1)
    grad_accum: int = param(1, "micro-batches whose gradients add up before one optimizer step", ge=1)

    def checks(self) -> list[tuple[str, str]]:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            return [("learner.optim.betas", f"learner.optim.betas = {list(self.betas)}: need two numbers in [0, 1); "
                     "fix: e.g. [0.9, 0.95]")]
        return []


@dataclass(frozen=True)
class DPOConfig:
    """Direct preference optimisation on ``pairs``."""

    beta: float = param(0.1, "DPO temperature β: how far the policy may move from the reference", gt=0.0)
    kind: Literal["sigmoid", "ipo"] = param("sigmoid", "loss: sigmoid (Rafailov 2023) or ipo (Azar 2023)")
    label_smoothing: float = param(0.0, "conservative DPO: assumed share of flipped labels", ge=0.0, lt=0.5)
    epochs: int = param(1, "passes over each batch of pairs", ge=1)
    nll_coef: float = param(0.0, "weight of the chosen texts' token-mean NLL added to the loss (RPO, Pang et al. "
                                 "2024; TRL's rpo_alpha): DPO alone can push both sides down and garble the policy "
                                 "when the chosen texts are unlikely ones, e.g. revisions; 0: plain DPO", ge=0.0)


@dataclass(frozen=True)
class PPOConfig:
    """PPO on experience batches: clipped surrogate, value head, KL to the reference, shaped rewards."""

    clip_eps: float = param(0.2, "policy ratio clip ε", gt=0.0, lt=1.0)
    value_clip_eps: float = param(0.2, "value clip ε", gt=0.0)
    vf_coef: float = param(0.5, "weight of the value loss", ge=0.0)
    entropy_coef: float = param(0.0, "weight of the entropy bonus", ge=0.0)
    gamma: float = param(1.0, "discount γ", ge=0.0, le=1.0)
    lam: float = param(0.95, "GAE λ", ge=0.0, le=1.0)
    kl_kind: Literal["k1", "k2", "k3"] = param("k1", "per-token KL estimator in the reward penalty")
    kl_coef: float = param(0.05, "initial KL penalty coefficient", ge=0.0)
    kl_target: float | None = param(None, "adaptive KL target (Ziegler 2019); null: fixed coefficient", gt=0.0)
    kl_horizon: int = param(10000, "adaptive KL horizon in samples", ge=1)
    reward_clip: float = param(5.0, "clip sequence rewards to ±this before shaping (0: no clip)", ge=0.0)
    whiten_advantages: bool = param(True, "normalise advantages over the batch's valid tokens")
    epochs: int = param(2, "passes over each experience batch", ge=1)
    stop_kl: float | None = param(None, "stop an update's epochs early once the last epoch's mean approximate KL to "
                                        "the sampling policy exceeds this (cleanrl's target_kl; metric "
                                        "update_epochs); null: always run every epoch", gt=0.0)
    ptx_coef: float = param(0.0, "weight of a supervised NLL term mixed into the loss: in `ouro run` on the "
                                 "constitution's winning revisions (Constitutional AI's supervised stage), in "
                                 "`ouro train` on the ptx rows given", ge=0.0)


@dataclass(frozen=True)
class LoRAConfig:
    """Train a low-rank adapter instead of all weights (peft)."""

    enabled: bool = param(False, "train a LoRA adapter; only the adapter is published to the rollout")
    r: int = param(8, "adapter rank", ge=1)
    alpha: int = param(16, "adapter scaling α", ge=1)
    dropout: float = param(0.0, "adapter dropout", ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = param(("q_proj", "v_proj"), "module names that get adapters")
    qlora: bool = param(False, "load the base in 4-bit (QLoRA; needs CUDA and bitsandbytes)")


@dataclass(frozen=True)
class DeepSpeedConfig:
    """DeepSpeed ZeRO (learner.strategy = deepspeed)."""

    stage: Literal[1, 2, 3] = param(2, "ZeRO stage: 1 optimizer states, 2 + gradients, 3 + parameters")
    offload_optimizer: bool = param(False, "keep optimizer states in CPU memory")
    offload_param: bool = param(False, "keep parameters in CPU memory (stage 3)")
    bf16: bool = param(False, "train in bfloat16")

    def checks(self) -> list[tuple[str, str]]:
        if self.offload_param and self.stage != 3:
            return [("learner.deepspeed.offload_param", "learner.deepspeed.offload_param needs stage 3; "
                     "fix: set learner.deepspeed.stage=3 or offload_param=false")]
        return []


@dataclass(frozen=True)
class LearnerConfig:
    """The learner: algorithm, Ray Train scaling, strategy, optimiser, LoRA, checkpoints."""

    algo: Literal["dpo", "ppo", "rm"] = param(
        "dpo", "update rule: dpo or ppo for the policy, rm to train the reward model (Bradley-Terry) on pairs")
    num_workers: int = param(2, "Ray Train workers (0: train inside the driver, same API)", ge=0)
    num_cpus_per_worker: float = param(1.0, "CPUs each Ray Train worker reserves", gt=0.0)
    use_gpu: Literal["auto", "yes", "no"] = param("auto", "train on GPUs (auto: when the cluster has them)")
    num_gpus_per_worker: float = param(1.0, "GPUs each Ray Train worker reserves when it trains on GPUs", gt=0.0)
    resources: dict[str, float] = param(factory=dict, doc="custom Ray resources each Ray Train worker needs, e.g. "
                                        "{learner_node: 0.01}: workers land only on nodes that declare them", ge=0.0)
    strategy: Literal["ddp", "deepspeed"] = param("ddp", "ddp (gloo on CPU, nccl on GPU) or deepspeed ZeRO")
    deepspeed: DeepSpeedConfig = param(factory=DeepSpeedConfig, doc="ZeRO settings (strategy deepspeed)")
    optim: OptimConfig = param(factory=OptimConfig, doc="optimiser and gradient handling")
    dpo: DPOConfig = param(factory=DPOConfig, doc="DPO settings")
    ppo: PPOConfig = param(factory=PPOConfig, doc="PPO settings")
    lora: LoRAConfig = param(factory=LoRAConfig, doc="LoRA / QLoRA adapters")
    rm_epochs: int = param(1, "passes over each batch of pairs when training the reward model (algo rm)", ge=1)
    storage_path: str | None = param(None, "where Ray Train keeps checkpoints (null: <run dir>/train)")
    keep_checkpoints: int = param(2, "most recent checkpoints kept", ge=1)
    call_timeout_s: float = param(1800.0, "longest wait for one update", gt=0.0)
    max_failures: int = param(3, "Ray Train restarts of the worker group after a learner worker dies; each resumes "
                                 "from the last checkpoint and redoes the interrupted update (0: a dead worker stops "
                                 "the run)", ge=0)

    def checks(self) -> list[tuple[str, str]]:
        if self.algo == "rm" and self.lora.enabled:
            return [("learner.lora.enabled", "learner.algo = 'rm' trains the reward model's weights and head in "
                     "full; LoRA is for the policy here; fix: set learner.lora.enabled=false for algo rm")]
        return []
