"""The top-level config of an ouro-ray run: one ``seed``, the policy model, the tiny world, the cluster.

Sections are frozen dataclasses; components receive the values they need, never the whole config.
"""

from __future__ import annotations

from dataclasses import dataclass

from ouro_ray.config.fields import param
from ouro_ray.config.judges import JudgesConfig
from ouro_ray.config.learner import LearnerConfig
from ouro_ray.config.loop import DataConfig, EvaluationConfig, HumanConfig, LoopConfig, ReplayConfig, ScoringConfig
from ouro_ray.config.roles import ReferenceConfig, RewardModelConfig, RolloutConfig
from ouro_ray.config.stages import DistillConfig, LabyrinthConfig
from ouro_ray.config.tracking import TrackingConfig
from ouro_ray.config.world import WorldConfig

TINY_WORLD = "tiny-world"


@dataclass(frozen=True)
class ModelConfig:
    """Where the initial policy comes from."""

    path: str = param(
        TINY_WORLD,
        "initial policy weights: 'tiny-world' (built locally from the world section, cached), an `ouro run` "
        "directory (its current policy), a learner checkpoint, or any "
        "Hugging Face model directory",
    )


@dataclass(frozen=True)
class ClusterConfig:
    """The Ray cluster a run starts or joins."""

    address: str | None = param(
        None, "Ray address to join ('auto', 'ray://host:10001'); null: $RAY_ADDRESS if set, else start a local cluster"
    )
    num_cpus: int | None = param(None, "CPUs of a local cluster (null: all of this machine's)", ge=1)
    num_gpus: int | None = param(None, "GPUs of a local cluster (null: autodetect)", ge=0)
    object_store_mb: int | None = param(None, "object store size of a local cluster in MiB (null: Ray's default)", ge=64)
    dashboard: bool = param(True, "start the Ray dashboard with a local cluster")
    namespace: str = param("ouro", "Ray namespace of the run's named actors")
    serve_host: str = param("127.0.0.1", "where Ray Serve's HTTP proxy listens when this run starts Serve")
    serve_port: int = param(8000, "Ray Serve's HTTP proxy port when this run starts Serve", ge=1, le=65535)
    worker_logs: bool = param(False, "print the actors' logs on the driver's console (`ouro run`); they are in the "
                                     "dashboard and /tmp/ray/session_latest/logs either way")


@dataclass(frozen=True)
class OuroConfig:
    """An ouro-ray run."""

    seed: int = param(0, "the one seed from which every random stream of the run is derived", ge=0, le=2**32 - 1)
    model: ModelConfig = param(factory=ModelConfig, doc="the initial policy")
    world: WorldConfig = param(factory=WorldConfig, doc="the tiny world (used when model.path is 'tiny-world')")
    cluster: ClusterConfig = param(factory=ClusterConfig, doc="the Ray cluster")
    distill: DistillConfig = param(factory=DistillConfig, doc="stage 2: dialogues distilled into summaries")
    labyrinth: LabyrinthConfig = param(factory=LabyrinthConfig, doc="stage 3: challenge prompts from summaries")
    rollout: RolloutConfig = param(factory=RolloutConfig, doc="stage 4: the rollout group that generates candidates")
    reference: ReferenceConfig = param(factory=ReferenceConfig, doc="the frozen reference policy")
    reward_model: RewardModelConfig = param(factory=RewardModelConfig, doc="the learned reward model")
    judges: JudgesConfig = param(factory=JudgesConfig, doc="stage 5: rule, AI and HTTP judges and their elastic group")
    learner: LearnerConfig = param(factory=LearnerConfig, doc="stage 6: the DPO/PPO learner on Ray Train")
    rounds: int = param(3, "rounds of the seven stages `ouro run` runs", ge=1)
    loop: LoopConfig = param(factory=LoopConfig, doc="how the rounds run")
    data: DataConfig = param(factory=DataConfig, doc="stage 1: where dialogues (or fixed prompts) come from")
    scoring: ScoringConfig = param(factory=ScoringConfig, doc="stage 5: teachers combined into one reward; review")
    human: HumanConfig = param(factory=HumanConfig, doc="stage 5's people: label costs, budget, a simulated human")
    replay: ReplayConfig = param(factory=ReplayConfig, doc="stage 7: failed prompts replayed in the next round")
    evaluation: EvaluationConfig = param(factory=EvaluationConfig, doc="held-out prompts measured every round")
    tracking: TrackingConfig = param(factory=TrackingConfig, doc="experiment tracking: TensorBoard, MLflow, W&B")

    def checks(self) -> list[tuple[str, str]]:
        """Rules that span sections."""
        if self.human.pairs_per_round and not (self.human.simulated and self.reward_model.refit_every):
            return [("human.pairs_per_round", f"human.pairs_per_round = {self.human.pairs_per_round} asks the simulated "
                     "human for pairs that only the loop's reward model reads; fix: set human.simulated=true and "
                     "reward_model.refit_every=1 (or higher), or human.pairs_per_round=0")]
        if not self.judges.configured and not (self.reward_model.refit_every and self.human.pairs_per_round):
            return [("judges.rules", "no judge is configured; fix: list rules, enable judges.llm, set "
                     "judges.http.base_url or judges.reward_model.path (or, RLHF: reward_model.refit_every=1 with "
                     "human.simulated=true and human.pairs_per_round > 0, a reward model trained on a person's pairs)")]
        if "rules" in self.evaluation.teachers and self.judges.rules:
            return [("evaluation.teachers", f"evaluation.teachers = [rules] grades held-out answers with the rule "
                     f"checkers, and judges.rules = {list(self.judges.rules)} already trains on them, so the grade "
                     "would not be independent; fix: set evaluation.teachers=[auto] (the oracle), or judges.rules=[] "
                     "to keep the rules out of the reward")]
        return []
