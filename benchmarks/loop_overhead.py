"""loop-overhead: one sync round of the loop through Ray actors ÷ the same stages in one process.

Both sides run :meth:`Loop.round` (steps 1-7: dialogues → … → PPO update) on the same tiny-world
model, config, prompts and seed. The Ray side has the rollout and reference actors, the judge group
on Ray Serve and the learner on Ray Train (as `ouro run` builds them); the in-process side has every
role with ``num_workers: 0`` / ``judges.max_workers: 0`` in this process. Start-up (actors, Serve,
Ray Train) is outside the timed part; rounds alternate Ray, local, Ray, … and each side's learner
advances one version per round, so round k of both sides trains the same number of times.
Goal: ratio ≤ 1.10 (what the actors, the object store and Serve add to a round).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.harness import Context, alternate, ratio_stats, section, spread, timed

SUITE = "loop-overhead"

QUICK = ["loop.prompts_per_round=32", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=24",
         "data.synthetic_dialogs=12", "evaluation.held_out_dialogs=4", "evaluation.size=8"]
LOCAL = ["rollout.workers.num_workers=0", "reference.workers.num_workers=0", "judges.max_workers=0",
         "judges.min_workers=0", "learner.num_workers=0"]


class Side:
    """One role set (Ray or in process) with its own run directory and Loop; ``round()`` times one round."""

    def __init__(self, cfg, model_dir: str, tmp: Path, name: str):
        from ouro_ray.config import to_dict
        from ouro_ray.loop.driver import Loop
        from ouro_ray.loop.roles import build_roles
        from ouro_ray.loop.rundir import RunDir
        from ouro_ray.loop.run import held_out
        from ouro_ray.loop.sources import DialogSource

        run = RunDir(tmp / name).create(to_dict(cfg))
        source = DialogSource(cfg, run.path)
        self.roles = build_roles(cfg, model_dir, run.path / "train", 0, lambda m: None)
        self.loop = Loop(cfg, run, self.roles, model_dir, held_out(cfg, run, source), source)
        self.r = 0
        self.candidates = 0

    def round(self) -> float:
        seconds, stats = timed(lambda: self.loop.round(self.r))
        self.r += 1
        self.candidates += stats["train_candidates"]
        return seconds

    def close(self) -> None:
        self.roles.close()


def run(ctx: Context) -> dict:
    from cluster.local import connect, shutdown
    from ouro_ray.config import load_config
    from ouro_ray.models.load import resolve_model_path

    repo = Path(__file__).resolve().parents[1]
    overrides = (QUICK if ctx.quick else []) + [f"cluster.namespace={ctx.namespace}", "cluster.worker_logs=false"]
    ray_cfg = load_config(str(repo / "configs/tiny.yaml"), overrides)
    local_cfg = load_config(str(repo / "configs/tiny.yaml"), overrides + LOCAL)
    model_dir = str(resolve_model_path(ray_cfg.model.path, ray_cfg.world, ray_cfg.seed))
    c = ray_cfg.cluster
    info = connect(c.address, num_cpus=c.num_cpus, num_gpus=c.num_gpus, object_store_mb=c.object_store_mb,
                   dashboard=False, namespace=c.namespace, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="ouro-bench-loop-") as tmp:
        ray_side = Side(ray_cfg, model_dir, Path(tmp), "ray")
        local_side = Side(local_cfg, model_dir, Path(tmp), "local")
        try:
            ray_s, local_s = alternate(ray_side.round, local_side.round, reps=ctx.reps, warmup=0)
        finally:
            ray_side.close()
            local_side.close()
            if info.started_here:
                from ray import serve

                serve.shutdown()
                shutdown()
    per_round = ray_side.candidates / max(ray_side.r, 1)
    return section(SUITE, ratio_name="ray round / in-process round", ratio=ratio_stats(ray_s, local_s),
                   absolute={"ray_round_s": spread(ray_s), "in_process_round_s": spread(local_s),
                             "candidates_per_round": per_round,
                             "ray_candidates_per_s": spread([per_round / s for s in ray_s]),
                             "in_process_candidates_per_s": spread([per_round / s for s in local_s])},
                   params={"config": "configs/tiny.yaml", "overrides": overrides, "rounds": ctx.reps},
                   goal="<= 1.10", notes=["round k of both sides has trained k times; start-up is not timed"])
