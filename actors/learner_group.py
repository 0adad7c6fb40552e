"""The driver's handle on the learner: ``update(batch) -> metrics``, in process or on Ray Train.

Checkpoints live under ``<storage_path>/<name>/checkpoint_*``; building a group with the same
storage path and name resumes from the newest one (model, optimizer, version, KL state).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from actors.fanout import role_error
from actors.learner import LearnerChannel, LearnerError, latest_checkpoint, learner_loop
from actors.weights import _is_actor, publish_weights
from cluster.placement import learner_worker_resources
from ouro_ray.config.learner import LearnerConfig
from ouro_ray.learner.learner import PolicyLearner
from ouro_ray.models.device import pick_device

log = logging.getLogger(__name__)


def _is_dataset(batch: Any) -> bool:
    return not isinstance(batch, pa.Table) and hasattr(batch, "split") and hasattr(batch, "to_arrow_refs")


def _as_table(batch: Any) -> pa.Table:
    """An Arrow table from a table or a Ray Data dataset (in-process learner)."""
    if not _is_dataset(batch):
        return batch
    import ray

    return pa.concat_tables(ray.get(batch.to_arrow_refs(), timeout=600))


def _dataset_task(dataset: Any, world: int) -> dict[str, Any]:
    """One Ray Data shard per worker (a block each) and the longest shard's length, which every rank pads to."""
    shards = dataset.repartition(world).split(world)
    counts = [s.count() for s in shards]
    if min(counts) == 0:
        raise ValueError(f"a dataset of {sum(counts)} rows leaves a learner worker without rows; fix: send at least "
                         f"learner.num_workers = {world} rows per update")
    return {"shards": shards, "shard_rows": max(counts)}


class LearnerGroup:
    """Stage 6's learner, alive across rounds; publishes every new version to ``weight_store``."""

    def __init__(self, cfg: LearnerConfig, model_dir: str, *, storage_path: str | None = None, seed: int = 0,
                 weight_store: Any = None, name: str = "learner", prefix: str = "ouro"):
        """``storage_path``: where checkpoints go; defaults to ``learner.storage_path`` (the run sets it
        to ``<run dir>/train`` when that is null)."""
        self.cfg, self.store, self.version = cfg, weight_store, 0
        storage_path = storage_path or cfg.storage_path
        if storage_path is None:
            raise ValueError("the learner needs a checkpoint location; fix: set learner.storage_path or pass "
                             "storage_path to LearnerGroup")
        self.run_dir = Path(storage_path).expanduser().absolute() / name
        resume = latest_checkpoint(self.run_dir)
        if cfg.num_workers == 0:
            device = "cpu" if cfg.use_gpu == "no" else str(pick_device())  # in the driver: its GPU when it has one
            self._local = PolicyLearner(cfg, model_dir, seed=seed, device=device,
                                        resume_from=str(resume) if resume else None)
            self.version = self._local.version
            if weight_store is not None:
                publish_weights(weight_store, self._local.policy, self.version)
            return
        self._local = None
        self._start_trainer(model_dir, seed, name, prefix, resume)

    def _start_trainer(self, model_dir: str, seed: int, name: str, prefix: str, resume: Path | None) -> None:
        import ray
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        cfg = self.cfg
        use_gpu = cfg.use_gpu == "yes" or (cfg.use_gpu == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
        # The channel holds the updates in flight and cannot be rebuilt after a restart: it lives on the driver's
        # node, as Ray Train's controller does, so a lost worker node never takes it (the learner restarts, the run
        # goes on); anywhere else, Ray may place a 0-CPU actor on any node.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.channel = ray.remote(LearnerChannel).options(name=f"{prefix}/learner-channel", num_cpus=0,
                                                          scheduling_strategy=here).remote()
        trainer = TorchTrainer(
            learner_loop,
            train_loop_config={"cfg": cfg, "model_dir": str(model_dir), "seed": seed, "channel": self.channel,
                               "store": self.store, "checkpoints": str(self.run_dir)},
            scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=use_gpu,
                                         resources_per_worker=learner_worker_resources(cfg, use_gpu)),
            run_config=RunConfig(name=name, storage_path=str(self.run_dir.parent),
                                 checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                                 failure_config=FailureConfig(max_failures=cfg.max_failures)),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        )
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._fit, args=(trainer,), name="ouro-learner", daemon=True)
        self._thread.start()
        if resume is not None:
            import json

            self.version = json.loads((resume / "learner_state.json").read_text())["version"]

    def _fit(self, trainer) -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # surfaced by the next update()
            self._failure = exc

    def update(self, batch: pa.Table | Any, producer: str = "the driver", ptx: pa.Table | None = None,
               checkpoint: bool = True) -> dict[str, float]:
        """One update; the new version is published before this returns, and checkpointed unless
        ``checkpoint`` is false (benchmarks time updates without the disk).

        ``batch`` is an Arrow table (one object; every worker reads its rows) or a Ray Data dataset
        built from Arrow (``ray.data.from_arrow``), split across the workers. ``ptx``: PPO-ptx rows.
        """
        if self._local is not None:
            return self._update_local(_as_table(batch), producer, checkpoint, ptx)
        import ray

        task = {"kind": self.cfg.algo, "checkpoint": checkpoint, "producer": producer, "base_version": self.version,
                "ptx": None if ptx is None else [ray.put(ptx)]}
        task |= _dataset_task(batch, self.cfg.num_workers) if _is_dataset(batch) else {"box": [ray.put(batch)]}
        index = ray.get(self.channel.submit.remote(task), timeout=60)
        result = self._wait(index)
        if "error" in result:
            raise role_error(result["error"], "learner", "ray-train/rank-0", "update")
        self.version = int(result["version"])
        return {**result, "learner_restarts": float(ray.get(self.channel.restarts.remote(), timeout=60))}

    def republish_if_lost(self) -> bool:
        """Publish the version held again when the weight store has lost it (its actor died and restarted
        empty), so a worker that restarts after that still finds the current weights; whether it did."""
        if self.store is None or self.version == 0:
            return False
        import ray

        held = ray.get(self.store.version.remote(), timeout=60) if _is_actor(self.store) else self.store.version()
        if held >= self.version:
            return False
        log.warning("the weight store holds version %d, the learner %d (the store restarted): publishing again",
                    held, self.version)
        if self._local is not None:
            publish_weights(self.store, self._local.policy, self.version)
        else:
            result = self._wait(ray.get(self.channel.submit.remote({"kind": "publish"}), timeout=60))
            if "error" in result:
                raise role_error(result["error"], "learner", "ray-train/rank-0", "publish")
        return True

    def _wait(self, index: int) -> dict[str, Any]:
        import ray

        deadline = time.monotonic() + self.cfg.call_timeout_s
        while time.monotonic() < deadline:
            if self._failure is not None or not self._thread.is_alive():
                raise LearnerError(f"the Ray Train learner stopped: {self._failure!r}") from self._failure
            result = ray.get(self.channel.result.remote(index, 2.0), timeout=30)
            if result is not None:
                return result
        raise TimeoutError(f"learner update {index} gave no answer within {self.cfg.call_timeout_s:g} s; "
                           "fix: raise learner.call_timeout_s or look at the Ray Train workers on the dashboard")

    def _update_local(self, batch: pa.Table, producer: str, checkpoint: bool, ptx: pa.Table | None) -> dict[str, float]:
        try:
            metrics = self._local.update(batch, producer, ptx)
        except Exception as exc:
            raise role_error(exc, "learner", "local", "update")
        self.version = self._local.version
        if self.store is not None:
            publish_weights(self.store, self._local.policy, self.version)
        if checkpoint:
            self._save_local()
        return metrics

    def _save_local(self) -> Path:
        path = self._local.save(self.run_dir / f"checkpoint_{self.version:06d}")
        kept = sorted(self.run_dir.glob("checkpoint_*"), key=lambda p: p.stat().st_mtime)
        for old in kept[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.run_dir)

    def close(self, timeout_s: float = 120.0) -> None:
        """Stop the workers (they finish the current task) and wait for ``fit`` to return."""
        if self._local is not None:
            self._local = None
            return
        import ray

        ray.get(self.channel.submit.remote({"kind": "stop"}), timeout=60)
        self._thread.join(timeout_s)
        ray.kill(self.channel)
