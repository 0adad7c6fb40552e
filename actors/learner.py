"""Stage 6, Update: the persistent learner on Ray Train.

One ``TorchTrainer.fit()`` runs for the whole run in a driver thread. Its workers (DDP over gloo on
CPU, nccl on GPU, or DeepSpeed ZeRO) each build a :class:`PolicyLearner` once, then loop: take the
next task from a ``LearnerChannel`` actor, read the batch (one object, zero-copy on every worker),
update, publish the new weights version to the weight store (rank 0), report metrics and a
checkpoint through Ray Train (the loop's resume needs every update's), and answer the driver. So the model,
the optimizer state and the process group live across rounds; a batch costs one round trip, not a
new trainer. ``num_workers: 0`` runs the same ``PolicyLearner`` in the driver.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from actors.weights import publish_weights
from ouro_ray.learner.learner import PolicyLearner


class LearnerChannel:
    """Tasks from the driver to every learner worker (each reads every task), results back (async actor)."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []
        self.results: dict[int, dict[str, Any]] = {}
        self._changed = asyncio.Condition()
        self.starts = 0  # worker-group starts (Ray Train restarts the group after a worker dies)
        self.pids: dict[int, int] = {}  # rank -> process id of the live group's workers

    async def start(self, rank: int, pid: int) -> int:
        """A (re)started worker checks in; returns the first task not finished: the one a dead worker left
        (redone from the checkpoint), or the next to come."""
        async with self._changed:
            self.starts += rank == 0
            self.pids[rank] = pid
            return next((i for i, t in enumerate(self.tasks) if t.get("kind") != "done"), len(self.tasks))

    async def restarts(self) -> int:
        """How many times Ray Train restarted the worker group."""
        return max(0, self.starts - 1)

    async def worker_pids(self) -> dict[int, int]:
        return dict(self.pids)

    async def submit(self, task: dict[str, Any]) -> int:
        async with self._changed:
            self.tasks.append(task)
            self._changed.notify_all()
            return len(self.tasks) - 1

    async def next_task(self, index: int, timeout_s: float) -> dict[str, Any] | None:
        """Task ``index`` once the driver has sent it (None after ``timeout_s``: ask again)."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(self.tasks) > index), timeout_s)
            except asyncio.TimeoutError:
                return None
            return self.tasks[index]

    async def finish(self, index: int, result: dict[str, Any]) -> None:
        async with self._changed:
            self.results[index] = result
            self.tasks[index] = {"kind": "done"}  # drop the batch references: the objects can be freed
            self._changed.notify_all()

    async def result(self, index: int, timeout_s: float) -> dict[str, Any] | None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: index in self.results), timeout_s)
            except asyncio.TimeoutError:
                return None
            return self.results.pop(index)


def _publish(learner: PolicyLearner, store: Any, rank: int) -> None:
    with learner.strategy.gathered():  # ZeRO-3: every rank takes part in gathering the parameters
        if rank == 0 and store is not None:
            publish_weights(store, learner.policy, learner.version)


UPDATE_METRICS = "update_metrics.json"
"""The metrics of the update a checkpoint holds: a restarted worker answers with them when its checkpoint
already has the update the dead worker made but could not report (never applied twice)."""


def _report(learner: PolicyLearner, task: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Report the update's metrics to Ray Train, with a checkpoint when the task asks for one. The checkpoint
    is written to a temporary directory, removed once Ray Train has copied it to the run's storage (the upload
    is synchronous): left there, every update would leave one behind (60 MB each for SmolLM2's LoRA state,
    the whole model without LoRA)."""
    import json

    import ray.train

    if not task.get("checkpoint"):
        ray.train.report(metrics)
        return
    local = Path(tempfile.mkdtemp(prefix="ouro-ckpt-"))
    try:
        path = learner.save(local)
        kept = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        (path / UPDATE_METRICS).write_text(json.dumps(kept))
        # DeepSpeed: every rank holds a ZeRO partition, so every rank reports its files (merged by Ray Train).
        sharded = learner.cfg.strategy == "deepspeed"
        checkpoint = ray.train.Checkpoint.from_directory(str(path)) if learner.rank == 0 or sharded else None
        ray.train.report(metrics, checkpoint=checkpoint)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _resume_dir(config: dict[str, Any]) -> tuple[str | None, Path | None]:
    """Ray Train's checkpoint after a worker-group restart; else the newest under the learner's storage (a
    group restarted before Ray Train registered the last report finds it there); else none (a fresh start).
    Second: the local copy made of Ray Train's checkpoint, for the caller to remove once it has read it."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        newest = latest_checkpoint(Path(config["checkpoints"]))
        return (str(newest) if newest is not None else None), None
    local = Path(tempfile.mkdtemp(prefix="ouro-resume-"))
    checkpoint.to_directory(str(local))
    return str(local), local


def _saved_metrics(resumed: str | None) -> dict[str, Any]:
    """The metrics of the update held by the checkpoint this worker resumed from ({}: none)."""
    import json

    path = Path(resumed) / UPDATE_METRICS if resumed else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def _done_before(learner: PolicyLearner, task: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any] | None:
    """The task's metrics when the checkpoint this worker resumed from already holds its update (a worker
    died after checkpointing it, before answering): the update is not applied twice. None: do it."""
    if task.get("base_version") is None or learner.version <= task["base_version"]:
        return None
    return {**saved, "version": float(learner.version)}


def _task_batch(task: dict[str, Any], rank: int):
    """This worker's batch: the shared table (all rows; ranks pick theirs) or its Ray Data shard."""
    import pyarrow as pa
    import ray

    if "shards" in task:
        refs = task["shards"][rank].to_arrow_refs()
        return pa.concat_tables(ray.get(refs, timeout=600)), task["shard_rows"]
    return ray.get(task["box"][0], timeout=600), None


def portable_error(exc: Exception) -> Exception:
    """``exc`` as it crosses to the driver: the exception object itself (its type kept), with this
    worker's traceback attached as a note (a traceback object does not pickle); an exception that does
    not pickle becomes a :class:`LearnerError` naming its type, message and traceback."""
    import pickle
    import traceback

    trace = "".join(traceback.format_exception(exc))
    try:
        sent = pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception holding an unpicklable object (a lock, a CUDA handle)
        return LearnerError(f"{type(exc).__name__}: {exc}\n{trace}")
    sent.add_note(f"learner worker traceback (rank 0):\n{trace}")
    return sent


class LearnerError(RuntimeError):
    """An update failed on the learner workers and its own exception could not be sent (the message
    carries its type, text and traceback), or the Ray Train run itself stopped."""


def learner_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker loop (module level, so workers import it by name)."""
    import ray
    import ray.train

    from ouro_ray.models.device import pick_device

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = str(pick_device())  # the GPU Ray Train gave this worker, else the CPU
    resumed, downloaded = _resume_dir(config)
    learner = PolicyLearner(config["cfg"], config["model_dir"], seed=config["seed"], rank=rank, world_size=world,
                            device=device, resume_from=resumed)
    saved = _saved_metrics(resumed)
    if downloaded is not None:  # read in full: the copy would otherwise stay for the rest of the run
        shutil.rmtree(downloaded, ignore_errors=True)
    channel, store = config["channel"], config["store"]
    # a restarted group starts at the task a dead worker left unfinished: it is redone from the checkpoint
    index = ray.get(channel.start.remote(rank, os.getpid()), timeout=60)
    _publish(learner, store, rank)  # a (re)started learner republishes what it holds
    while True:
        task = ray.get(channel.next_task.remote(index, 5.0), timeout=60)
        if task is None:
            continue
        if task["kind"] == "stop":
            return
        if task["kind"] == "publish":  # the weight store lost its weights: publish the version held again
            _publish(learner, store, rank)
            if rank == 0:
                ray.get(channel.finish.remote(index, {"version": float(learner.version)}), timeout=60)
            index += 1
            continue
        try:
            metrics = _done_before(learner, task, saved)
            if metrics is None:
                ptx = ray.get(task["ptx"][0], timeout=600) if task.get("ptx") else None
                batch, shard_rows = _task_batch(task, rank)
                metrics = learner.update(batch, task.get("producer", "the driver"), ptx, shard_rows)
                _publish(learner, store, rank)
                _report(learner, task, metrics)
        except Exception as exc:
            if rank == 0:
                ray.get(channel.finish.remote(index, {"error": portable_error(exc)}), timeout=60)
            raise
        if rank == 0:
            ray.get(channel.finish.remote(index, metrics), timeout=60)
        index += 1


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint directory Ray Train (or the in-process learner) wrote under ``run_dir``."""
    found = [p for p in run_dir.glob("checkpoint_*") if (p / "learner_state.json").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
