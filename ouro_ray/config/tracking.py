"""Config of experiment tracking: which trackers `ouro run` logs to, and where each keeps its files.

Every backend is local by default (files under ``RUN_DIR/tracking/``), so tracking works offline and
a run directory carries its own tracked run. ``ouro_ray.loop.tracking`` does the logging.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from ouro_ray.config.fields import param

BACKENDS = ("tensorboard", "mlflow", "wandb")
"""The trackers `ouro run` can log to."""

EXTRA = "pip install 'ouro-ray[tracking]'"
"""What installs every backend's package."""


@dataclass(frozen=True)
class TensorBoardConfig:
    """TensorBoard event files (written with tensorboardX; view them with `tensorboard --logdir`)."""

    log_dir: str | None = param(None, "where the event files go (null: RUN_DIR/tracking/tensorboard)")


@dataclass(frozen=True)
class MLflowConfig:
    """An MLflow run (written with mlflow-skinny's client)."""

    tracking_uri: str | None = param(
        None, "MLflow tracking URI: a server (http://host:5000) or a database (sqlite:///path.db) (null: "
              "sqlite:///RUN_DIR/tracking/mlflow.db, a local store)")
    artifact_location: str | None = param(
        None, "where a new experiment keeps its artifacts (null: RUN_DIR/tracking/mlflow-artifacts for a local "
              "sqlite store; the server's default for a server)")


@dataclass(frozen=True)
class WandbConfig:
    """A Weights & Biases run."""

    mode: Literal["offline", "online"] = param(
        "offline", "offline: files only, upload later with `wandb sync DIR`; online: stream to the W&B server "
                   "(needs `wandb login` or $WANDB_API_KEY)")
    entity: str | None = param(None, "W&B team or user the run belongs to (null: the logged-in user's default)")
    dir: str | None = param(None, "where W&B writes its run files (null: RUN_DIR/tracking)")


@dataclass(frozen=True)
class TrackingConfig:
    """Experiment tracking of `ouro run`: the resolved config, every round's metrics (the learner's update, the
    stage times), and the run's plots and reports as artifacts at the end."""

    backends: tuple[Literal["tensorboard", "mlflow", "wandb"], ...] = param(
        (), f"trackers to log to, any of {', '.join(BACKENDS)} (empty: no tracking); their packages come with "
            f"`{EXTRA}`")
    project: str = param("ouro-ray", "the MLflow experiment and the W&B project the run is logged under")
    run_name: str | None = param(None, "the tracked run's name (null: the run directory's name)")
    tensorboard: TensorBoardConfig = param(factory=TensorBoardConfig, doc="the tensorboard backend")
    mlflow: MLflowConfig = param(factory=MLflowConfig, doc="the mlflow backend")
    wandb: WandbConfig = param(factory=WandbConfig, doc="the wandb backend")

    def checks(self) -> list[tuple[str, str]]:
        twice = sorted({b for b in self.backends if self.backends.count(b) > 1})
        if twice:
            return [("tracking.backends", f"tracking.backends lists {', '.join(twice)} twice; fix: name each backend "
                                          "once")]
        if not self.project.strip():
            return [("tracking.project", "tracking.project is empty; fix: name the project (default 'ouro-ray')")]
        # A backend's own settings while it is not listed would do nothing: say so rather than ignore them.
        for name in BACKENDS:
            section = getattr(self, name)
            changed = [f.name for f in fields(section) if getattr(section, f.name) != getattr(type(section)(), f.name)]
            if changed and name not in self.backends:
                return [(f"tracking.{name}.{changed[0]}", f"tracking.{name}.{changed[0]} is set, and {name} is not in "
                         f"tracking.backends = {list(self.backends)}; fix: add {name} to tracking.backends, or drop "
                         f"tracking.{name}.{changed[0]}")]
        return []
