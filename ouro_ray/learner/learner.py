"""The learner as one rank sees it: the trainable policy, its strategy, the KL controller, checkpoints.

``PolicyLearner`` is plain Python: the Ray Train loop (``actors/learner.py``) builds one per worker,
and the in-process mode builds one in the driver. Versions count updates; version ``v`` is the
policy after ``v`` updates, which is what the rollout stamps on candidates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import torch

from cluster import telemetry
from ouro_ray.algos import AdaptiveKLController, FixedKLController
from ouro_ray.config.learner import LearnerConfig
from ouro_ray.data.validate import validate_batch
from ouro_ray.learner.policy import build_policy
from ouro_ray.learner.reward_model import build_reward_module
from ouro_ray.learner.strategy import DDPStrategy, DeepSpeedStrategy, LocalStrategy, Strategy, reduce_metrics
from ouro_ray.learner.updates import dpo_update, ppo_update, rm_update
from ouro_ray.models.load import load_tokenizer
from ouro_ray.seeding import derive_seed

STATE_FILE = "learner_state.json"
POLICY_DIR = "policy"
VALUE_HEAD = "value_head.pt"


def throughput(batch: pa.Table, seconds: float, shards: int = 1) -> dict[str, float]:
    """The update's wall time and its rows and candidate tokens (all ranks) per second; ``shards``: ``batch`` is
    one of that many equal Ray Data shards (else every rank holds the whole batch)."""
    columns = [c for c in ("token_ids", "chosen_token_ids", "rejected_token_ids") if c in batch.column_names]
    tokens = sum(pc.sum(pc.list_value_length(batch.column(c))).as_py() or 0 for c in columns)
    per_s = shards / max(seconds, 1e-9)
    return {"step_seconds": seconds, "samples_per_s": batch.num_rows * per_s, "tokens_per_s": tokens * per_s}


def make_strategy(module, cfg: LearnerConfig, rank: int, world_size: int) -> Strategy:
    if cfg.strategy == "deepspeed":
        return DeepSpeedStrategy(module, cfg.optim, cfg.deepspeed, rank, world_size)
    if world_size > 1:
        return DDPStrategy(module, cfg.optim, rank, world_size)
    return LocalStrategy(module, cfg.optim, rank, world_size)


class PolicyLearner:
    """One rank's learner. ``resume_from``: a checkpoint directory written by :meth:`save`."""

    def __init__(self, cfg: LearnerConfig, model_dir: str, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device: str = "cpu", resume_from: str | None = None):
        self.cfg, self.seed, self.rank, self.model_dir = cfg, seed, rank, str(model_dir)
        state = json.loads((Path(resume_from) / STATE_FILE).read_text()) if resume_from else {}
        start_dir = str(Path(resume_from) / POLICY_DIR) if resume_from and not cfg.lora.enabled else self.model_dir
        torch.manual_seed(derive_seed(seed, "learner-init"))
        if cfg.algo == "rm":
            module = build_reward_module(start_dir, seed, device)
        else:
            module = build_policy(start_dir, cfg.lora, with_value=cfg.algo == "ppo", device=device)
        if resume_from:
            self._restore_module(module, Path(resume_from))
        self.tokenizer = load_tokenizer(self.model_dir)
        self.strategy = make_strategy(module, cfg, rank, world_size)
        if resume_from:
            self.strategy.load_state(Path(resume_from))  # optimizer (DeepSpeed: this rank's ZeRO partition)
        self.version = int(state.get("version", 0))
        p = cfg.ppo
        self.kl = (AdaptiveKLController(state.get("kl_coef", p.kl_coef), p.kl_target, p.kl_horizon) if p.kl_target
                   else FixedKLController(p.kl_coef))

    def _restore_module(self, module, root: Path) -> None:
        if self.cfg.lora.enabled:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(module.policy, load_file(str(root / POLICY_DIR / "adapter_model.safetensors")))
        if module.value_head is not None and (root / VALUE_HEAD).is_file():
            module.value_head.load_state_dict(torch.load(root / VALUE_HEAD, weights_only=True))

    @property
    def policy(self) -> torch.nn.Module:
        """The HF model being trained (the policy, peft-wrapped with LoRA; or the reward model), unwrapped."""
        return self.strategy.unwrapped().policy

    def update(self, batch: pa.Table, producer: str = "the driver", ptx: pa.Table | None = None,
               shard_rows: int | None = None) -> dict[str, float]:
        """One update on ``batch`` (``preference_batch`` for DPO, ``experience`` for PPO); bumps the version.

        ``ptx``: pretraining rows (``token_sequences``) for PPO-ptx when ``learner.ppo.ptx_coef > 0``.
        ``shard_rows``: ``batch`` is this rank's shard of a Ray Data split, padded to that many rows.
        """
        started = time.perf_counter()
        seed = derive_seed(self.seed, "update", self.version)
        pad = self.tokenizer.pad_token_id
        self.strategy.module.train()
        if self.cfg.algo == "dpo":
            validate_batch(batch, "preference_batch", producer)
            metrics = dpo_update(self.strategy, batch, self.cfg.dpo, self.cfg.optim, pad, seed, shard_rows)
        elif self.cfg.algo == "rm":
            validate_batch(batch, "preference_batch", producer)
            metrics = rm_update(self.strategy, batch, self.cfg.rm_epochs, self.cfg.optim, pad, seed, shard_rows)
        else:
            validate_batch(batch, "experience", producer)
            if ptx is not None:
                validate_batch(ptx, "token_sequences", producer)
            metrics = ppo_update(self.strategy, batch, self.cfg.ppo, self.cfg.optim, pad, seed, self.kl.value, ptx,
                                 shard_rows)
            metrics["kl_coef"] = self.kl.value
            self.kl.update(metrics["kl_to_ref"], shard_rows * self.strategy.world_size if shard_rows else batch.num_rows)
        self.version += 1
        seconds = time.perf_counter() - started
        telemetry.record("ouro_learner_step_seconds", seconds, rank=str(self.rank))
        metrics |= throughput(batch, seconds, self.strategy.world_size if shard_rows is not None else 1)
        return reduce_metrics(metrics, self.strategy.world_size) | {"version": float(self.version)}

    def save(self, out_dir: str | Path) -> Path:
        """A checkpoint: the HF policy directory (or peft adapter), value head, optimizer, version and KL state.

        Call on every rank (ZeRO-3 gathers parameters collectively; DeepSpeed saves each rank's
        optimizer partition); rank 0 writes the rest.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self.strategy.gathered():
            if self.rank == 0:
                out.mkdir(parents=True, exist_ok=True)
                self.policy.save_pretrained(out / POLICY_DIR)
                self.tokenizer.save_pretrained(out / POLICY_DIR)
                head = self.strategy.unwrapped().value_head
                if head is not None:
                    torch.save(head.state_dict(), out / VALUE_HEAD)
        self.strategy.save_state(out)
        if self.rank == 0:
            state: dict[str, Any] = {"version": self.version, "kl_coef": self.kl.value, "algo": self.cfg.algo,
                                     "base_model": self.model_dir}
            (out / STATE_FILE).write_text(json.dumps(state, indent=1))
        return out
