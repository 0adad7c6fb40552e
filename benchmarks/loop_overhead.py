"""loop-overhead: one sync round of the loop through Ray actors ÷ the same stages in one process.

Both sides run :meth:`Loop.round` (steps 1-7: dialogues → … → PPO update) on the same tiny-world
model, config, prompts and seed. The Ray side has the rollout and reference actors, the judge group
on Ray Serve and the learner on Ray Train (as `ouro run` builds them); the in-process side has every
role with ``num_workers: 0`` / ``judges.max_workers: 0`` in this process. Start-up (actors, Serve,
Ray Train) is outside the timed part, and so is one warm-up round of each side (the Ray side's first
round pays the actors' first calls, Ray Train's first report and Serve's first routes: 3.4x a later
one here). Then rounds alternate Ray, local, Ray, … and each side's learner advances one version per
round, so round k of both sides trains the same number of times. Full mode runs 5 timed rounds a side.
Goal: ratio ≤ 1.10 (what the actors, the object store and Serve add to a round).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread, timed

SUITE = "loop-overhead"
FULL_REPS = 5
"""Timed rounds a side in full mode (a round is ~50 s here; one round's noise is a few per cent)."""
WARMUP = 1

QUICK = ["loop.prompts_per_round=16", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=16",
         "data.synthetic_dialogs=8", "evaluation.held_out_dialogs=4", "evaluation.size=4"]
RAY_SIDE = ["reference.workers.num_cpus=2"]
"""Thread parity: in one process every role computes with the process's 2 torch threads; Ray gives an
actor as many as its ``num_cpus`` (tiny.yaml's reference has 1), which would time threads, not Ray."""
LOCAL = ["rollout.workers.num_workers=0", "reference.workers.num_workers=0", "judges.max_workers=0",
         "judges.min_workers=0", "learner.num_workers=0"]


class Side:
    """One role set (Ray or in process) with its own run directory and Loop; ``round()`` times one round."""

    def __init__(self, cfg, model_dir: str, tmp: Path, name: str):
        from ouro_ray.config import to_dict
        from ouro_ray.loop.driver import Loop
        from ouro_ray.loop.roles import build_roles
        from ouro_ray.loop.run import held_out
        from ouro_ray.loop.rundir import RunDir
        from ouro_ray.stages.sources import DialogSource

        run = RunDir(tmp / name).create(to_dict(cfg))
        source = DialogSource(cfg, run.path)
        self.roles = build_roles(cfg, model_dir, run.path / "train", 0, lambda m: None)
        self.loop = Loop(cfg, run, self.roles, model_dir, held_out(cfg, run, source), source)
        self.r = 0
        self.candidates = 0
        self.stages: list[dict[str, float]] = []
        """Per round, ``seconds_<stage>`` by the loop's stage clock (where a side's extra time goes), plus
        the update's two calls: ``seconds_update_reference`` and ``seconds_update_learner``."""
        self._calls: dict[str, float] = {}
        self._time_calls(self.roles.reference, "logprobs", "seconds_update_reference")
        self._time_calls(self.roles.learner, "update", "seconds_update_learner")

    def _time_calls(self, group, method: str, key: str) -> None:
        """Wrap ``group.method`` (on this instance only) to add its wall time to ``key`` of the round."""
        inner = getattr(group, method)

        def timed_call(*args, **kwargs):
            seconds, value = timed(lambda: inner(*args, **kwargs))
            self._calls[key] = self._calls.get(key, 0.0) + seconds
            return value

        setattr(group, method, timed_call)

    def round(self) -> float:
        seconds, stats = timed(lambda: self.loop.round(self.r))
        self.loop.clock.stop()
        self.stages.append(self.loop.clock.take(self.r)[0] | {k: round(v, 3) for k, v in self._calls.items()})
        self._calls = {}
        self.r += 1
        self.candidates += stats["train_candidates"]
        return seconds

    def stage_seconds(self, last: int) -> dict[str, float]:
        """Median seconds per stage over the ``last`` (timed) rounds."""
        rounds = self.stages[-last:]
        return {k[len("seconds_"):]: round(statistics.median(m.get(k, 0.0) for m in rounds), 3)
                for k in sorted({k for m in rounds for k in m})}

    def close(self) -> None:
        self.roles.close()


def run(ctx: Context) -> dict:
    from ouro_ray.config import load_config
    from ouro_ray.models.resolve import resolve_model

    repo = Path(__file__).resolve().parents[1]
    overrides = (QUICK if ctx.quick else []) + [f"cluster.namespace={ctx.namespace}", "cluster.worker_logs=false"]
    ray_cfg = load_config(str(repo / "configs/tiny.yaml"), overrides + RAY_SIDE)
    local_cfg = load_config(str(repo / "configs/tiny.yaml"), overrides + LOCAL)
    model_dir = str(resolve_model(ray_cfg.model.path, ray_cfg.world, ray_cfg.seed).model_dir)
    with ray_cluster(ctx), tempfile.TemporaryDirectory(prefix="ouro-bench-loop-") as tmp:
        ray_side = Side(ray_cfg, model_dir, Path(tmp), "ray")
        local_side = Side(local_cfg, model_dir, Path(tmp), "local")
        try:
            ray_s, local_s = alternate(ray_side.round, local_side.round, reps=ctx.reps, warmup=WARMUP)
        finally:
            ray_side.close()
            local_side.close()
    per_round = ray_side.candidates / max(ray_side.r, 1)
    return section(SUITE, ratio_name="ray round / in-process round", ratio=ratio_stats(ray_s, local_s),
                   absolute={"ray_round_s": spread(ray_s), "in_process_round_s": spread(local_s),
                             "candidates_per_round": per_round,
                             "ray_candidates_per_s": spread([per_round / s for s in ray_s]),
                             "in_process_candidates_per_s": spread([per_round / s for s in local_s]),
                             "seconds_per_stage": {"ray": ray_side.stage_seconds(len(ray_s)),
                                                   "in_process": local_side.stage_seconds(len(local_s))}},
                   params={"config": "configs/tiny.yaml", "overrides": overrides, "ray_overrides": RAY_SIDE,
                           "in_process_overrides": LOCAL, "rounds": ctx.reps,
                           "warmup_rounds": WARMUP},
                   goal="<= 1.10", notes=["round k of both sides has trained k times; start-up and one warm-up "
                                          "round a side are not timed"])
