"""Experiment tracking for `ouro run`: TensorBoard, MLflow and W&B behind one :class:`Tracker` protocol.

What every backend gets (``tracking.backends``):

    config     the resolved config with secrets redacted (``public_dict``): MLflow params (dotted keys), the
               W&B run config, TensorBoard text ``config``
    rounds     every metrics.json entry at step = its round: ``learner/<k>`` (the update: loss, KL, clip
               fraction, grad norm, samples and tokens per second), ``time/<stage>`` (stage seconds) and
               ``round/<k>`` (the held-out figures and the round's training counts)
    artifacts  at the end: the plots and reports in RUN_DIR (MLflow artifacts, W&B run files, TensorBoard
               images and text)

Resume: ``RUN_DIR/tracking/state.json`` keeps the MLflow and W&B run ids and the last round logged. A
resumed run continues the same tracked run and logs only the rounds after it; rounds a crash left
unlogged (finished, in metrics.json, not yet sent) are sent first. A round is sent only once it is
final (after ``state.json``), so an interrupted round that reruns is never logged twice.

Glue, not algorithm. Each backend's package is optional (``pip install 'ouro-ray[tracking]'``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol

from ouro_ray.config.tracking import EXTRA, MLflowConfig, TensorBoardConfig, TrackingConfig, WandbConfig
from ouro_ray.data.files import write_text_atomic
from ouro_ray.loop.rundir import RunDir

ARTIFACTS = ("metrics.png", "grade_gap.png", "training_history.csv", "metrics.json", "safety_report.json",
             "stress.json", "config.yaml")
"""The run's plots and reports sent to the trackers at the end (those the run wrote)."""

PACKAGES = {"tensorboard": (("tensorboardX", "tensorboardX"),),
            "mlflow": (("mlflow", "mlflow-skinny"), ("sqlalchemy", "sqlalchemy"), ("alembic", "alembic")),
            "wandb": (("wandb", "wandb"),)}
"""backend -> (module, the PyPI package that brings it); sqlalchemy and alembic: MLflow's sqlite store."""

STATE = "tracking/state.json"


class Tracker(Protocol):
    """One experiment tracker's run. The config is logged when it opens."""

    where: str
    """Where to look at the run (a command or a URL), for the run's console."""

    def log_round(self, step: int, scalars: dict[str, float]) -> None: ...

    def log_artifacts(self, paths: list[Path]) -> None: ...

    def close(self, failed: bool) -> None: ...


def missing_packages(cfg: TrackingConfig) -> list[str]:
    """One problem per backend whose package is not installed, naming the extra that installs it."""
    problems = []
    for backend in cfg.backends:
        gone = [package for module, package in PACKAGES[backend] if importlib.util.find_spec(module) is None]
        if backend == "mlflow" and (cfg.mlflow.tracking_uri or "sqlite:").split(":")[0] != "sqlite":
            gone = [p for p in gone if p not in ("sqlalchemy", "alembic")]  # a server keeps its own database
        if gone:
            problems.append(f"tracking.backends = {list(cfg.backends)}: the {backend} backend needs "
                            f"{', '.join(gone)}, not installed here; fix: {EXTRA} (or drop {backend} from "
                            "tracking.backends)")
    return problems


def round_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """A metrics.json entry as tracker scalars: ``learner/`` (the ``update_*`` keys), ``time/`` (``seconds_*``),
    ``round/`` (the rest); a 95 % interval becomes ``_lo``/``_hi``; text and missing values are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "round":  # the step
            continue
        name = (f"learner/{key[7:]}" if key.startswith("update_") else f"time/{key[8:]}"
                if key.startswith("seconds_") else f"round/{key}")
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            out[f"{name}_lo"], out[f"{name}_hi"] = float(value[0]), float(value[1])
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config dict as dotted keys and their values as text (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flat_config(value, f"{full}.")
        else:
            out[full] = json.dumps(value) if isinstance(value, (list, dict)) or value is None else str(value)
    return out


def _import(backend: str, module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"tracking.backends names {backend}, and `import {module}` failed ({exc}); fix: {EXTRA} "
                          f"(or drop {backend} from tracking.backends)") from exc


class TensorBoardTracker:
    """Event files: scalars per round, the config and the reports as text, the plots as images."""

    def __init__(self, cfg: TensorBoardConfig, run: RunDir, config: dict[str, Any], first_step: int):
        import yaml

        tensorboardx = _import("tensorboard", "tensorboardX")
        self.log_dir = Path(cfg.log_dir).expanduser() if cfg.log_dir else run.path / "tracking" / "tensorboard"
        # purge_step: TensorBoard drops events at or after it that an interrupted session left behind
        # the suffix: a file per session, even two in one second (the file name holds the time in seconds)
        self.writer = tensorboardx.SummaryWriter(logdir=str(self.log_dir), purge_step=first_step or None,
                                                 filename_suffix=f".{time.time_ns()}")
        self.step, self.where = first_step, f"tensorboard --logdir {self.log_dir}"
        self.writer.add_text("config", f"```yaml\n{yaml.safe_dump(config, sort_keys=False)}```", first_step)

    def log_round(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()
        self.step = step

    def log_artifacts(self, paths: list[Path]) -> None:
        import matplotlib.image

        for path in paths:
            if path.suffix == ".png":
                self.writer.add_image(f"artifacts/{path.stem}", matplotlib.image.imread(path)[..., :3], self.step,
                                      dataformats="HWC")
            else:
                self.writer.add_text(f"artifacts/{path.name}", f"```\n{path.read_text()}\n```", self.step)

    def close(self, failed: bool) -> None:
        self.writer.close()


class MLflowTracker:
    """An MLflow run (one per run directory): params, metrics per step, artifacts; the status at the end."""

    def __init__(self, cfg: MLflowConfig, run: RunDir, project: str, name: str, config: dict[str, Any],
                 state: dict[str, Any]):
        _import("mlflow", "mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        local = run.path / "tracking"
        local.mkdir(parents=True, exist_ok=True)
        uri = cfg.tracking_uri or f"sqlite:///{local / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(project)
        if experiment is None:
            where = cfg.artifact_location or ((local / "mlflow-artifacts").as_uri() if uri.startswith("sqlite:") else None)
            experiment_id = self.client.create_experiment(project, artifact_location=where)
        else:
            experiment_id = experiment.experiment_id
        self.run_id = state.get("mlflow_run_id")
        if self.run_id is None:
            self.run_id = self.client.create_run(experiment_id, run_name=name,
                                                 tags={"ouro.run_dir": str(run.path)}).info.run_id
            state["mlflow_run_id"], logged = self.run_id, {}
        else:
            logged = self._resume(uri)
        # params cannot change in MLflow: a resume sends the new keys; config.yaml (an artifact) has every value
        self.where = f"MLflow run {self.run_id} in {uri}"
        params = [Param(k, v[:6000]) for k, v in flat_config(config).items() if k not in logged]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _resume(self, uri: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            previous = self.client.get_run(self.run_id)
        except MlflowException as exc:
            raise ValueError(f"{STATE} names MLflow run {self.run_id}, which {uri} does not have ({exc}); fix: "
                             "set tracking.mlflow.tracking_uri to the store the run was logged to, or delete "
                             f"mlflow_run_id from {STATE} to start a new MLflow run") from exc
        self.client.update_run(self.run_id, status="RUNNING")
        return previous.data.params

    def log_round(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in scalars.items()]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class WandbTracker:
    """A W&B run whose id RUN_DIR keeps: offline by default (``wandb sync`` uploads it later)."""

    def __init__(self, cfg: WandbConfig, run: RunDir, project: str, name: str, config: dict[str, Any],
                 state: dict[str, Any]):
        wandb = _import("wandb", "wandb")
        root = Path(cfg.dir).expanduser() if cfg.dir else run.path / "tracking"
        root.mkdir(parents=True, exist_ok=True)
        state.setdefault("wandb_run_id", secrets.token_hex(4))  # W&B's own id form: 8 lowercase letters/digits
        # console off: the run's own progress display owns the terminal
        self.run = wandb.init(project=project, entity=cfg.entity, name=name, id=state["wandb_run_id"], resume="allow",
                              mode=cfg.mode, dir=str(root), config=config,
                              settings=wandb.Settings(silent=True, console="off"))
        self.run.config.update(config, allow_val_change=True)  # a resume with overrides (rounds=6) updates it
        self.where = (f"W&B run {self.run.url}" if cfg.mode == "online" else
                      f"W&B offline run {self.run.id}: wandb sync {Path(self.run.dir).parent}")

    def log_round(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:  # copied into the run's files: W&B would link to a file outside them
            copy = Path(self.run.dir) / path.name
            shutil.copyfile(path, copy)
            self.run.save(str(copy), base_path=self.run.dir, policy="now")

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackers:
    """Every configured tracker of one run, and the last round they were sent (``RUN_DIR/tracking/state.json``)."""

    def __init__(self, run: RunDir, trackers: list[Tracker], state: dict[str, Any]):
        self.run, self.trackers, self.state = run, trackers, state

    @property
    def logged_through(self) -> int:
        return self.state.get("logged_through", -1)

    def log_rounds(self, history: list[dict[str, Any]]) -> int:
        """Send the entries of ``history`` after the last round sent; returns how many were sent."""
        fresh = [m for m in history if m["round"] > self.logged_through]
        for metrics in fresh:
            scalars = round_scalars(metrics)
            for tracker in self.trackers:
                tracker.log_round(metrics["round"], scalars)
            self.state["logged_through"] = metrics["round"]
            self.save()
        return len(fresh)

    def log_artifacts(self) -> list[Path]:
        """The run's plots and reports (those that exist) to every tracker."""
        paths = [self.run.path / name for name in ARTIFACTS if (self.run.path / name).is_file()]
        for tracker in self.trackers:
            tracker.log_artifacts(paths)
        return paths

    def describe(self) -> str:
        """One line naming where each tracker's run is."""
        return "tracking: " + "; ".join(tracker.where for tracker in self.trackers)

    def save(self) -> None:
        if self.trackers:
            write_text_atomic(self.run.path / STATE, json.dumps(self.state, indent=2) + "\n")

    def close(self, failed: bool = False) -> None:
        for tracker in self.trackers:
            tracker.close(failed)


def open_trackers(cfg: TrackingConfig, run: RunDir, config: dict[str, Any]) -> Trackers:
    """The trackers ``cfg.backends`` names, each continuing the run's tracked run if RUN_DIR has one.

    ``config``: the resolved config, secrets already redacted (``public_dict``).
    """
    state = run.read_json(STATE, {}) if cfg.backends else {}
    name = cfg.run_name or run.path.name
    opened: list[Tracker] = []
    try:
        for backend in cfg.backends:
            if backend == "tensorboard":
                opened.append(TensorBoardTracker(cfg.tensorboard, run, config, state.get("logged_through", -1) + 1))
            elif backend == "mlflow":
                opened.append(MLflowTracker(cfg.mlflow, run, cfg.project, name, config, state))
            else:
                opened.append(WandbTracker(cfg.wandb, run, cfg.project, name, config, state))
    except BaseException:
        Trackers(run, opened, state).close(failed=True)
        raise
    trackers = Trackers(run, opened, state)
    trackers.save()  # the run ids, before any round: a crash from here on resumes the same tracked runs
    return trackers


@contextmanager
def tracking(cfg: TrackingConfig, run: RunDir, config: dict[str, Any]) -> Iterator[Trackers]:
    """:func:`open_trackers`, first sending the finished rounds not yet sent; closed as failed on an error."""
    trackers = open_trackers(cfg, run, config)
    done = run.state()["completed_rounds"]
    try:
        trackers.log_rounds([m for m in run.read_json("metrics.json", {"rounds": []})["rounds"] if m["round"] <= done])
        yield trackers
    except BaseException:
        trackers.close(failed=True)
        raise
    trackers.close()
