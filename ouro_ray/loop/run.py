"""`ouro run`: a cluster, the role groups, the rounds, and the report at the end."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from ouro_ray.config import OuroConfig, load_config, public_dict
from ouro_ray.loop.rundir import RunDir

HELD_OUT = "heldout.parquet"
TABLE_KEYS = ("reward_mean", "safety", "persona", "kl", "win_rate", "coherence", "content", "refused_unsafe",
              "over_refusal", "length", "train_reward_mean")


def check_run_config(cfg: OuroConfig) -> None:
    """What `ouro run` needs beyond the config's own checks (each round must be resumable)."""
    from ouro_ray.config import ConfigError

    problems = []
    if cfg.learner.algo not in ("ppo", "dpo"):
        problems.append(f"learner.algo = {cfg.learner.algo!r}: the loop updates the policy with ppo or dpo; fix: "
                        "set learner.algo=ppo or dpo (train a reward model with `ouro train rm`)")
    if cfg.learner.keep_checkpoints < 2:
        problems.append("learner.keep_checkpoints = 1: an interrupted round may overwrite the last finished round's "
                        "checkpoint; fix: set learner.keep_checkpoints=2 or more")
    if cfg.distill.use_ai and not cfg.judges.llm.enabled and cfg.data.prompts is None:  # stage 2 runs
        problems.append("distill.use_ai = true: the AI summariser is the judge workers' LLM, and judges.llm.enabled is "
                        "false; fix: set judges.llm.enabled=true, or distill.use_ai=false (rule extraction only)")
    if cfg.learner.algo == "ppo" and cfg.learner.ppo.ptx_coef > 0 and not cfg.judges.constitution.enabled:
        problems.append(f"learner.ppo.ptx_coef = {cfg.learner.ppo.ptx_coef}: in `ouro run` the supervised term "
                        "learns from the constitution's revisions, and judges.constitution.enabled is false; fix: "
                        "enable the constitution, or set learner.ppo.ptx_coef=0")
    from ouro_ray.world_judge.choice import is_tiny_world, judge_problem

    judge = judge_problem(cfg, is_tiny_world(cfg.model.path))
    if judge:
        problems.append(judge)
    from ouro_ray.loop.tracking import missing_packages

    problems += missing_packages(cfg.tracking)
    if problems:
        raise ConfigError(problems)


def default_out() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def open_run(config: str | None, overrides: list[str], out: str | None, resume: str | None) -> tuple[OuroConfig, RunDir]:
    """The config and run directory of a new run, or of the one ``resume`` names (overrides apply on top)."""
    if resume:
        run = RunDir(resume)
        run.check_resumable()
        if config:
            raise ValueError("--resume reads RUN_DIR/config.yaml; fix: drop CONFIG (pass key=value overrides "
                             "such as rounds=6 to change it)")
        cfg = load_config(run.config_path, overrides)
        check_run_config(cfg)
        if overrides:  # e.g. more rounds: the run directory keeps what it now runs with
            run.path.joinpath("config.yaml").write_text(yaml.safe_dump(public_dict(cfg), sort_keys=False))
        return cfg, run
    cfg = load_config(config, overrides)
    check_run_config(cfg)
    return cfg, RunDir(out or default_out()).create(public_dict(cfg))


def held_out(cfg: OuroConfig, run: RunDir, source) -> Any:
    """The run's held-out prompts: made once, kept in RUN_DIR/heldout.parquet for every later round."""
    from ouro_ray.stages.sources import held_out_prompts

    path = run.path / HELD_OUT
    if path.is_file():
        return pq.read_table(path)
    table = held_out_prompts(cfg, source)
    pq.write_table(table, path)
    return table


def _writer(cfg: OuroConfig, roles):
    """Stage 2's AI summariser (distill.use_ai): the judge group's LLM, greedy."""
    if not cfg.distill.use_ai:
        return None
    from actors.judge import JudgeWriter

    return JudgeWriter(roles.judges, cfg.distill.max_new_tokens)


def run(cfg: OuroConfig, run_dir: RunDir, address: str | None = None, console=None) -> list[dict]:
    """Every round of the run into ``run_dir``; returns the metrics rounds (and prints the report)."""
    import logging

    from rich.console import Console

    from cluster.local import connect
    from ouro_ray.loop.driver import Loop
    from ouro_ray.loop.progress import LoopProgress
    from ouro_ray.loop.roles import build_roles
    from ouro_ray.loop.tracking import tracking
    from ouro_ray.models.resolve import resolve_model
    from ouro_ray.stages.sources import DialogSource
    from ouro_ray.world_judge.choice import resolve_judges

    console = console or Console(stderr=True)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the progress bars say what Serve is doing
    say = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    cluster = cfg.cluster if not address else dataclasses.replace(cfg.cluster, address=address)
    info = connect(cluster.address, num_cpus=cluster.num_cpus, num_gpus=cluster.num_gpus,
                   object_store_mb=cluster.object_store_mb, dashboard=cluster.dashboard,
                   namespace=cluster.namespace, log_to_driver=cluster.worker_logs)
    say(info.describe())
    model_dir = str(resolve_model(cfg.model.path, cfg.world, cfg.seed, progress=say, key="model.path").model_dir)
    state = run_dir.state()
    source = None if cfg.data.prompts else DialogSource(cfg, run_dir.path)
    heldout = held_out(cfg, run_dir, source)
    storage = Path(cfg.learner.storage_path).expanduser() if cfg.learner.storage_path else run_dir.path / "train"
    cfg = dataclasses.replace(cfg, judges=resolve_judges(cfg, model_dir, say))  # config.yaml keeps 'auto'
    if cfg.judges.llm.enabled:
        say(f"LLM judge: {cfg.judges.llm.model}")
    with tracking(cfg.tracking, run_dir, public_dict(cfg)) as trackers:  # sends each round once it is final
        if trackers.trackers:
            say(trackers.describe())
        roles = build_roles(cfg, model_dir, storage, state["policy_version"], say, state.get("reward_model_version", 0))
        try:
            with LoopProgress(console, cfg.rounds, state["completed_rounds"]) as progress:
                loop = Loop(cfg, run_dir, roles, model_dir, heldout, source, _writer(cfg, roles), progress.stage)
                history = loop.run_rounds(lambda r, m: (progress.round_done(r, m), trackers.log_rounds([m])))
        finally:
            roles.close()
            if info.started_here:  # Serve's driver-side threads must stop before Ray does
                from ray import serve

                from cluster.local import shutdown

                serve.shutdown()
                shutdown()
        report(cfg, run_dir, history, console)
        trackers.log_artifacts()
    return history


def report(cfg: OuroConfig, run_dir: RunDir, history: list[dict], console) -> None:
    """The end of a run: CSV history, PNG plot, safety report, the table and the before/after lines."""
    from ouro_ray.loop import report as rep

    rep.write_history_csv(history, run_dir.path / "training_history.csv")
    rep.plot_rounds(history, run_dir.path / "metrics.png", title=f"ouro run {run_dir.path.name}")
    if history[0].get("safety") is not None:
        rep.write_safety_report(history, public_dict(cfg), run_dir.path / "safety_report.json",
                                threshold=cfg.evaluation.safety_threshold)
    if not console.is_terminal:  # a log file: no need to squeeze the table into 80 columns
        from rich.console import Console

        console = Console(file=console.file, width=max(console.width, 140))
    console.print(rep.metrics_table(history, keys=[k for k in TABLE_KEYS if any(m.get(k) is not None
                                                                                 for m in history)]))
    console.print(f"held-out prompts: {history[0]['n_prompts']}, candidates per round: {history[0]['n_candidates']}")
    for line in rep.before_after(history):
        console.print("  " + line)
    last = history[-1]
    if last.get("stack_hacks") is not None:
        console.print(f"reward-hack stress suite against the teachers that trained the final policy: "
                      f"{last['stack_hacks']:.1f} hacks and {last['stack_hack_ties']:.1f} ties per 100 pairs "
                      f"(n {last['stack_hacks_n']}; {run_dir.path / 'stress.json'})")
    console.print(f"run directory: {run_dir.path}")


def main(config: str | None, overrides: list[str], out: str | None, resume: str | None,
         address: str | None) -> int:
    cfg, run_dir = open_run(config, overrides, out, resume)
    print(f"run directory: {run_dir.path}", file=sys.stderr)
    run(cfg, run_dir, address)
    return 0
