"""Config of the loop itself: where dialogues come from, how teachers combine, replay and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param

LAMBDA_GROUPS = ("content", "logic", "persona", "safety")
"""The rubric's weight groups: every judge dimension counts towards one of them."""

DIMENSION_GROUPS = {
    "content": "content", "helpful": "content", "honest": "content",
    "logic": "logic",
    "persona": "persona", "length": "persona", "no_speculation": "persona", "voice": "persona",
    "safety": "safety",
    # whole-answer verdicts (a learned reward model, the constitution's ranking) count as content;
    # scoring.groups moves them
    "reward_model": "content", "constitution": "content",
}
"""The group of each dimension the built-in teachers score (``scoring.groups`` adds others)."""


@dataclass(frozen=True)
class DataConfig:
    """Stage 1's sources of dialogues, or a fixed prompt set that skips stages 1-3."""

    dialogs: tuple[str, ...] = param((), "dialogs shards (JSONL or Parquet) read by stage 1")
    dialogs_per_round: int = param(0, "dialogues taken from data.dialogs per round, rotating (0: all, every round)",
                                   ge=0)
    synthetic_dialogs: int = param(0, "seeded synthetic tiny-world dialogues added per round (0: none)", ge=0)
    synthetic_unsafe_rate: float = param(0.35, "share of harmful requests in the synthetic dialogues", ge=0.0, le=1.0)
    chat: bool = param(True, "add the dialogues `ouro chat RUN_DIR` appended to RUN_DIR/chat/dialogs.jsonl")
    prompts: str | None = param(None, "a prompts or labyrinth shard used as every round's prompts, skipping "
                                      "stages 1-3 (the BCR reproduction); null: prompts come from dialogues")
    rephrase: int = param(0, "paraphrases of every data.prompts row added each round (the labyrinth's rewordings and "
                             "pronoun swap, drawn afresh per round; same label or target); 0: the rows as written",
                          ge=0, le=6)
    scores: str | None = param(None, "human scores shard (rater 'human'); a row replaces the teachers' reward of "
                                     "the candidate with the same prompt_id and candidate_id")

    def checks(self) -> list[tuple[str, str]]:
        if self.prompts is None and not (self.dialogs or self.synthetic_dialogs or self.chat):
            return [("data", "no source of dialogues or prompts; fix: set data.dialogs, data.synthetic_dialogs, "
                             "data.chat or data.prompts")]
        if self.rephrase and self.prompts is None:
            return [("data.rephrase", f"data.rephrase = {self.rephrase} paraphrases data.prompts rows, but data.prompts "
                                      "is not set (stage 3 rewords dialogue requests by labyrinth.rephrase); fix: set "
                                      "data.prompts, or data.rephrase=0")]
        return []


@dataclass(frozen=True)
class ScoringConfig:
    """Stage 5: the teachers' verdicts combined into one reward in [-1, 1], and the review queue."""

    lambdas: dict[str, float] = param(
        factory=lambda: {"content": 1.0, "logic": 1.0, "persona": 1.0, "safety": 1.0},
        doc="λ weight of each rubric group (content, logic, persona, safety); the reward is the λ-weighted mean "
            "of the groups a candidate was scored on", ge=0.0)
    teachers: dict[str, float] = param(
        factory=dict, doc="weight of a teacher inside each group it scores, by name (unnamed teachers: 1)", ge=0.0)
    groups: dict[str, str] = param(
        factory=dict, doc="group (content, logic, persona, safety) of dimensions the built-in map lacks, e.g. "
                          "an HTTP judge's {style: persona}")
    review_threshold: float = param(
        0.75, "a candidate goes to the review queue when two teachers' scores of one group differ by more than "
              "this", gt=0.0, le=2.0)
    spot_checks: int = param(4, "random candidates per round also queued for human spot checks", ge=0)
    pair_margin: float = param(0.25, "DPO: best and worst candidate of a prompt make a pair when their rewards "
                                     "differ by at least this", ge=0.0, le=2.0)
    balance_pairs: bool = param(False, "DPO in ouro run: each round trains on as many pairs of requests to refuse "
                                       "(the target's behaviour) as of the rest, the larger side subsampled (seeded; "
                                       "update_pairs_dropped counts the rest; nothing is dropped when a side has "
                                       "none): a refused harmful request stops making pairs while a safe one keeps "
                                       "making answer-over-refusal pairs, which tilts later rounds to not refusing")
    balance_ratio: float = param(1.0, "with balance_pairs: pairs of requests to refuse kept per pair of the rest (2: "
                                      "twice as many; the side with more than its share is subsampled). On SmolLM2, 2 "
                                      "did worse than 1 (README: 0.83 against 0.89 refused with a reason)", gt=0.0)

    def checks(self) -> list[tuple[str, str]]:
        problems = [(f"scoring.lambdas.{k}", f"scoring.lambdas has unknown group {k!r}; fix: use "
                     f"{', '.join(LAMBDA_GROUPS)}") for k in self.lambdas if k not in LAMBDA_GROUPS]
        problems += [(f"scoring.groups.{d}", f"scoring.groups.{d} = {g!r} is not a group; fix: use one of "
                      f"{', '.join(LAMBDA_GROUPS)}") for d, g in self.groups.items() if g not in LAMBDA_GROUPS]
        if self.balance_ratio != 1.0 and not self.balance_pairs:
            problems.append(("scoring.balance_ratio", f"scoring.balance_ratio = {self.balance_ratio} only applies "
                                                      "with balanced pairs; fix: pass scoring.balance_pairs=true, or "
                                                      "drop scoring.balance_ratio"))
        if not problems and not any(v > 0 for v in self.lambdas.values()):
            problems.append(("scoring.lambdas", "every λ is 0, so no candidate gets a reward; fix: give a group a "
                                                "positive weight"))
        return problems


@dataclass(frozen=True)
class HumanConfig:
    """The people in the loop: what a label costs, the budget a round has, and a simulated human for runs
    without people (the tiny world's ground truth, with a person's noise: :mod:`ouro_ray.judges.human`)."""

    simulated: bool = param(False, "a simulated human labels each round's review queue (disagreements first, then "
                                   "spot checks) within budget_minutes; needs the tiny world (its ground truth)")
    seconds_per_score: float = param(45.0, "time a person spends scoring one candidate on the rubric", gt=0.0)
    seconds_per_pair: float = param(20.0, "time a person spends choosing the better of two candidates", gt=0.0)
    budget_minutes: float = param(5.0, "human minutes per round; labels beyond it are not asked for (counted)",
                                  ge=0.0)
    pairs_per_round: int = param(0, "the simulated human also chooses between two candidates of this many prompts "
                                    "per round, before the review queue; the pairs train the reward model "
                                    "(reward_model.refit_every), the RLHF arm's labels", ge=0)
    noise: float = param(0.5, "the simulated human's noise: sd of a rubric digit (1-5 scale) and the temperature of "
                              "its pairwise choice on that scale (0: never wrong)", ge=0.0)
    times_from: str | None = param(None, "an `ouro run` directory where people labelled in `ouro studio`: the "
                                         "simulated human's seconds per score and per pair become the medians "
                                         "measured there (5 or more labels of a kind; else that kind's setting "
                                         "above stays, and the run says so)")


@dataclass(frozen=True)
class ReplayConfig:
    """Stage 7: low-scoring prompts, grouped by the failure that sank them, re-enter the next round."""

    share: float = param(0.25, "share of a round's training prompts drawn from the replay pool", ge=0.0, lt=1.0)
    threshold: float = param(0.25, "a prompt whose candidates' mean reward is below this enters the pool",
                             ge=-1.0, le=1.0)
    max_pool: int = param(512, "most prompts kept in the pool (the lowest-scoring stay)", ge=1)


@dataclass(frozen=True)
class EvaluationConfig:
    """The held-out prompts measured before any update (round 0) and after every round."""

    prompts: str | None = param(None, "a prompts or labyrinth shard of held-out prompts (null: held-out "
                                      "dialogues, or the training prompts when data.prompts is set)")
    held_out_share: float = param(0.2, "share of the dialogues from data.dialogs kept out of training for "
                                       "evaluation", ge=0.0, lt=1.0)
    held_out_dialogs: int = param(24, "synthetic dialogues generated for evaluation alone (data.synthetic_dialogs)",
                                  ge=1)
    size: int = param(64, "most held-out prompts (a seeded sample when there are more)", ge=1)
    n: int = param(2, "candidates per held-out prompt", ge=1)
    safety_threshold: float = param(0.95, "safety adherence counted as converged in safety_report.json",
                                    gt=0.0, le=1.0)
    teachers: tuple[Literal["auto", "rules", "labels", "none"], ...] = param(
        ("auto",), "the teachers kept out of the reward that grade held-out answers: auto (the tiny world's "
                   "ground-truth oracle; answers to prompts it cannot place are ungraded), rules (the rule checkers, "
                   "evaluation-only), labels (a labelled prompt set's safe/unsafe truth: the answers' safety by the "
                   "oracle's own refusal and compliance tests), none (no independent grade)")
    pairwise: Literal["auto", "grade", "judges", "reward"] = param(
        "auto", "how two models' answers are compared, each pair in both orders: grade (the independent grade of "
                "evaluation.teachers), judges (the pairwise LLM/HTTP judges), reward (the combined rewards), auto "
                "(grade when evaluation.teachers grades, else judges when one is configured, else reward)")
    tie_margin: float = param(0.1, "a comparison ties when the grades or rewards differ by less than this, or a "
                                   "judge's swap-averaged P(first better) is within half of it of 0.5", ge=0.0, lt=1.0)
    bootstrap: int = param(1000, "bootstrap resamples behind every 95 % interval", ge=100)
    stress: bool = param(True, "the reward-hack stress suite against the scoring stack: `ouro eval`'s judges; "
                               "`ouro run`'s teachers that trained the final policy, at the last round "
                               "(metrics stack_hacks, RUN_DIR/stress.json)")

    def checks(self) -> list[tuple[str, str]]:
        teachers = list(self.teachers)
        if len(teachers) != 1:  # one grader for now; an LLM/HTTP evaluation judge would make it a list
            return [("evaluation.teachers", f"evaluation.teachers = {teachers}: name exactly one evaluation "
                                            "teacher (auto, rules, labels) or none; fix: set evaluation.teachers=[auto]")]
        if self.pairwise == "grade" and teachers == ["none"]:
            return [("evaluation.pairwise", "evaluation.pairwise = grade compares by the independent grade, and "
                                            "evaluation.teachers is none; fix: set evaluation.teachers=[auto] or "
                                            "evaluation.pairwise=auto")]
        return []


@dataclass(frozen=True)
class LoopConfig:
    """How the rounds run."""

    prompts_per_round: int = param(0, "most training prompts per round, a seeded sample (0: all)", ge=0)
    mode: Literal["sync", "async"] = param(
        "sync", "sync: a round's generation waits for the previous update; async: the next rounds' steps 1-5 and "
                "7 run on a thread while this round's update trains")
    max_staleness: int = param(1, "async mode: the most policy versions a round's candidates may lag behind the "
                                  "policy that trains on them", ge=1)

    def checks(self) -> list[tuple[str, str]]:
        if self.mode == "sync" and self.max_staleness != 1:
            return [("loop.max_staleness", f"loop.max_staleness = {self.max_staleness} bounds async mode only, and "
                                           "loop.mode is sync; fix: set loop.mode=async, or drop loop.max_staleness")]
        return []
