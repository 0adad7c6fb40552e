"""The role groups one run uses, built from config: rollout, reference, judges, learner, weight store.

Each group is remote or in-process by its own config (``num_workers`` / ``judges.max_workers`` 0:
in the driver), with the same API, so the driver does not care which.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from ouro_ray.config import OuroConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from actors.judge_worker import JudgeOutput
    from ouro_ray.config.roles import SamplingConfig

log = logging.getLogger(__name__)


class Rollout(Protocol):
    """Stage 4: candidates for prompts (:class:`actors.rollout.RolloutGroup`)."""

    def generate(self, prompts: pa.Table, seed: int, sampling: SamplingConfig | None = None) -> pa.Table: ...

    def close(self) -> None: ...


class Reference(Protocol):
    """The frozen reference policy's per-token logprobs of candidates (:class:`actors.reference.ReferenceGroup`)."""

    def logprobs(self, candidates: pa.Table) -> pa.Table: ...

    def close(self) -> None: ...


class Judges(Protocol):
    """Stage 5's teachers, the evaluator's pairwise judge and stage 2's AI summariser
    (:class:`actors.judge.JudgeGroup`)."""

    def score(self, items: pa.Table, revise: bool = True) -> JudgeOutput: ...

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]: ...

    def complete(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]: ...

    def contradicts(self, pairs: Sequence[tuple[str, str]]) -> list[bool]: ...

    def pairwise_judges(self) -> list[str]: ...

    def close(self) -> None: ...


class Learner(Protocol):
    """Stage 6: one update per call, alive across rounds (:class:`actors.learner_group.LearnerGroup`)."""

    version: int

    def update(self, batch: pa.Table | Any, producer: str = ..., ptx: pa.Table | None = None,
               checkpoint: bool = True) -> dict[str, float]: ...

    def latest_checkpoint(self) -> Path | None: ...

    def close(self) -> None: ...


class WeightStore(Protocol):
    """The versioned weight store (:class:`actors.weights.WeightStore`, in the driver or a Ray actor
    handle to one, whose methods are called ``.remote``)."""

    def version(self) -> int: ...


@dataclass
class Roles:
    """The groups of one run, each remote or in-process by its own config, with the same API."""

    rollout: Rollout
    reference: Reference
    judges: Judges
    learner: Learner
    store: WeightStore | Any  # Any: a Ray actor handle has the same methods, called with .remote
    store_name: tuple[str, str | None] | None = None
    """(name, namespace) of the weight-store actor; None when it lives in the driver."""
    reward_model: Any = None
    """Stage 7's refitted reward model (:class:`~ouro_ray.loop.reward_model.LoopRewardModel`); None when
    ``reward_model.refit_every`` is 0."""
    judge_llm: Any = None
    """The Serve LLM judge app the HTTP judge calls (:class:`cluster.serve_llm.JudgeLLMApp`); None without
    ``judges.serve_llm``."""

    def ensure_weights(self) -> None:
        """Before work that needs the current weights: each learner publishes again what its store lost (a
        weight store that died restarts empty; a worker restarting after that would load the base weights)."""
        self.learner.republish_if_lost()
        if self.reward_model is not None:
            self.reward_model.learner.republish_if_lost()

    def close(self) -> None:
        """Stop every group (learner first: it may be mid-checkpoint)."""
        for group in (self.learner, self.reward_model, self.judges, self.judge_llm, self.rollout, self.reference):
            close = getattr(group, "close", None)
            if close is not None:
                close()
        if self.store_name is not None:
            _kill_named(*self.store_name)


def generate_current(roles: Any, prompts: Any, seed: int, sampling: Any = None, attempts: int = 3) -> Any:
    """The rollout's candidates from weights at least as new as the learner's (checked by the version each
    candidate carries). A weight store that died restarts empty, and a rollout actor that restarts after
    that loads the base weights: such a batch is made again once the learner has published again (the same
    seeds give the same candidates a clean run makes)."""
    expected = roles.learner.version if roles.learner is not None else 0
    for attempt in range(1, attempts + 1):
        roles.ensure_weights()
        candidates = roles.rollout.generate(prompts, seed=seed, sampling=sampling)
        import pyarrow.compute as pc

        held = int(pc.min(candidates.column("policy_version")).as_py()) if candidates.num_rows else expected
        if held >= expected:
            return candidates
        log.warning("the rollout generated with policy version %d, the learner holds %d (a worker restarted while "
                    "the weight store was empty); generating again (attempt %d of %d)", held, expected, attempt,
                    attempts)
    raise RuntimeError(f"the rollout kept generating with policy version {held} while the learner holds {expected}, "
                       f"{attempts} times; fix: look at the weight store actor and the rollout workers on the dashboard")


def _kill_named(name: str, namespace: str | None, timeout_s: float = 30.0) -> None:
    """Kill a named actor and wait until its name is free, so the next run gets a fresh one, not a dying one."""
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.kill(ray.get_actor(name, namespace=namespace))
        except ValueError:  # no actor of that name (any more)
            return
        time.sleep(0.1)


def checkpoint_version(path: Path) -> int:
    return int(json.loads((path / "learner_state.json").read_text())["version"])


def prune_checkpoints(learner_dir: Path, version: int) -> list[Path]:
    """Remove checkpoints newer than ``version`` (written by a round that did not finish)."""
    removed = []
    for path in learner_dir.glob("checkpoint_*"):
        if (path / "learner_state.json").is_file() and checkpoint_version(path) > version:
            shutil.rmtree(path)
            removed.append(path)
    if removed:  # Ray Train's index still lists them and would hand the worker a deleted checkpoint
        for snapshot in learner_dir.glob("checkpoint_manager_snapshot*.json"):
            snapshot.unlink()
    return removed


def _store_version(store: WeightStore | Any) -> int:
    if hasattr(store, "version") and not hasattr(store.version, "remote"):
        return store.version()
    import ray

    return ray.get(store.version.remote(), timeout=60)


def await_version(store: WeightStore | Any, version: int, failed: Callable[[], BaseException | None] = lambda: None,
                  timeout_s: float = 600.0) -> None:
    """Block until the weight store holds ``version`` (a resumed Ray Train learner publishes it on start)."""
    deadline = time.monotonic() + timeout_s
    while _store_version(store) < version:
        if failed() is not None:
            raise RuntimeError(f"the learner failed while resuming at version {version}") from failed()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the learner did not publish policy version {version} within {timeout_s:.0f} s; "
                               "fix: check the learner's Ray Train logs (ray dashboard, Jobs/Actors)")
        time.sleep(0.2)


def build_roles(cfg: OuroConfig, model_dir: str, storage: Path, resume_version: int,
                progress: Callable[[str], None], reward_model_version: int = 0) -> Roles:
    """Every group of the run; the learner resumes from ``storage`` at ``resume_version`` (the reward
    model's learner, when there is one, at ``reward_model_version``)."""
    from actors.judge import JudgeGroup
    from actors.learner_group import LearnerGroup
    from actors.reference import ReferenceGroup
    from actors.rollout import RolloutGroup
    from actors.weights import start_weight_store
    from cluster.serve_llm import start_judge_llm

    prefix, ns = cfg.cluster.namespace, cfg.cluster.namespace
    short = cpu_shortfall(cfg)
    if short:
        progress(short)
    local_store = cfg.rollout.workers.num_workers == 0 and cfg.learner.num_workers == 0
    store = start_weight_store(prefix, ns, local=local_store)
    store_name = None if local_store else (f"{prefix}/weights", ns)
    started: list[Any] = []
    judge_llm = None
    try:
        progress("starting the rollout group")
        started.append(RolloutGroup(model_dir, cfg.rollout, seed=cfg.seed, weight_store=store, prefix=prefix,
                                    namespace=ns))
        progress("starting the reference group")
        started.append(ReferenceGroup(model_dir, cfg.reference, prefix=prefix, namespace=ns))
        pruned = prune_checkpoints(storage / "learner", resume_version)
        if pruned:
            progress(f"dropped {len(pruned)} checkpoint(s) of an unfinished round")
        # The learner first: Ray Train starts its workers in the background (its first published version
        # is awaited below), so that start-up overlaps Serve's start and the judge deployment.
        progress("starting the learner")
        learner = LearnerGroup(cfg.learner, model_dir, storage_path=str(storage), seed=cfg.seed, weight_store=store,
                               prefix=prefix)
        started.append(learner)
        judges_cfg, judge_llm = start_judge_llm(cfg.judges, cfg.cluster.serve_host, cfg.cluster.serve_port, progress)
        progress("starting the judge group")
        started.append(JudgeGroup(judges_cfg, model_dir=model_dir, prefix=prefix, serve_host=cfg.cluster.serve_host,
                                  serve_port=cfg.cluster.serve_port))
        reward_model = None
        if cfg.reward_model.refit_every:
            progress("starting the reward model (group and learner)")
            reward_model = build_reward_model(cfg, model_dir, storage, reward_model_version)
            started.append(reward_model)
        if learner.version != resume_version:
            raise RuntimeError(f"the learner resumed at policy version {learner.version}, but the run finished its "
                               f"rounds at version {resume_version}; fix: keep learner.keep_checkpoints >= 2, or "
                               f"start a new run")
        progress("waiting for the learner's first weights")
        await_version(store, resume_version, lambda: getattr(learner, "_failure", None))
    except BaseException:
        # A half-built set must not leave actors, a trainer or an app behind. The start-up error is the one
        # raised; a failure while closing is logged, not allowed to hide it.
        closers = [getattr(g, "close", None) for g in reversed(started)] + [getattr(judge_llm, "close", None)]
        if store_name is not None:
            closers.append(lambda: _kill_named(*store_name))
        for close in filter(None, closers):
            try:
                close()
            except Exception as exc:
                log.warning("closing a role group after a failed start also failed: %s: %s", type(exc).__name__, exc)
        raise
    rollout, reference, learner, judges = started[:4]
    return Roles(rollout, reference, judges, learner, store, store_name, reward_model, judge_llm)


def cpu_demand(cfg: OuroConfig) -> dict[str, float]:
    """The CPUs each role's actors reserve when the run starts (judges: their ``min_workers`` replicas)."""
    rm = cfg.reward_model
    demand = {"rollout": cfg.rollout.workers.num_workers * cfg.rollout.workers.num_cpus,
              "reference": cfg.reference.workers.num_workers * cfg.reference.workers.num_cpus,
              "learner": cfg.learner.num_workers * cfg.learner.num_cpus_per_worker,
              "judges": cfg.judges.min_workers * cfg.judges.num_cpus if cfg.judges.max_workers else 0.0}
    if rm.refit_every:
        demand["reward_model"] = rm.workers.num_workers * rm.workers.num_cpus
        demand["reward_model learner"] = rm.learner_workers * cfg.learner.num_cpus_per_worker
    return {k: v for k, v in demand.items() if v}


def cpu_shortfall(cfg: OuroConfig) -> str | None:
    """A warning when the roles reserve more CPUs than the connected cluster has: the last actors would wait
    (until ``call_timeout_s``) for CPUs that a cluster without an autoscaler never frees."""
    import ray

    if not ray.is_initialized():
        return None
    have = float(ray.cluster_resources().get("CPU", 0.0))
    demand = cpu_demand(cfg)
    if sum(demand.values()) <= have + 1e-9:
        return None
    parts = ", ".join(f"{k} {v:g}" for k, v in demand.items())
    return (f"warning: the roles reserve {sum(demand.values()):g} CPUs ({parts}) and the cluster has {have:g}: "
            "the last actors wait for CPUs unless the cluster scales up; fix: raise cluster.num_cpus (logical CPUs "
            "may exceed the cores) or lower the roles' num_cpus")


def build_reward_model(cfg: OuroConfig, model_dir: str, storage: Path, resume_version: int) -> Any:
    """Stage 7's reward model: its group (``ouro/reward/<i>``), its own learner (``algo: rm``, resumed from
    ``storage/reward_learner`` at ``resume_version``: refits of an unfinished round are dropped) and the
    weight store between them (``ouro/reward-model/weights``, in the driver when both are)."""
    import dataclasses

    from actors.learner_group import LearnerGroup
    from actors.reward import RewardGroup
    from actors.weights import start_weight_store
    from ouro_ray.loop.reward_model import LoopRewardModel
    from ouro_ray.models.load import load_tokenizer

    prefix, ns, rm = cfg.cluster.namespace, cfg.cluster.namespace, cfg.reward_model
    start = rm.path or model_dir
    prune_checkpoints(storage / "reward_learner", resume_version)
    local = rm.workers.num_workers == 0 and rm.learner_workers == 0
    store = start_weight_store(f"{prefix}/reward-model", ns, local=local)
    store_name = None if local else (f"{prefix}/reward-model/weights", ns)
    learner_cfg = dataclasses.replace(cfg.learner, algo="rm", num_workers=rm.learner_workers,
                                      lora=dataclasses.replace(cfg.learner.lora, enabled=False))
    learner = LearnerGroup(learner_cfg, start, storage_path=str(storage), seed=cfg.seed, weight_store=store,
                           name="reward_learner", prefix=f"{prefix}/reward-model")
    release = [learner.close] + ([lambda: _kill_named(*store_name)] if store_name else [])
    try:
        group = RewardGroup(model_dir, rm, seed=cfg.seed, weight_store=store, prefix=prefix, namespace=ns)
    except BaseException:
        for close in release:
            close()
        raise
    return LoopRewardModel(rm, learner, group, load_tokenizer(start), release)
