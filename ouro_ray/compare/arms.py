"""The four arms of the Ouroboros comparison, and the figures each run yields.

Every arm starts from the same initial policy with the same config (prompt budget, rounds, learner,
seed); an arm only changes who teaches:

- ``sft``: the initial policy, no update: round 0 of a trained arm's runs (the same policy, held-out
  prompts and sampling seed in every arm; read from the fullest teacher stack run, Ouroboros first, so
  its reward-hack figure has teachers), so it costs no run of its own;
- ``rlhf``: a simulated human chooses between two candidates of ``human.pairs_per_round`` prompts a
  round; a reward model refitted on those pairs (Bradley-Terry) is PPO's only teacher;
- ``rlaif``: the AI judge and the constitution only (no human, no rule teacher, no replay);
- ``ouroboros``: the whole loop: rules, AI judge, constitution and the reward model refitted from the
  replay buffer's pairs; the simulated human only on the review queue (disagreements, spot checks);
  replay curriculum.

Figures come from the **independent grade** of the final policy's held-out answers (never from the
teachers an arm trained on): factual F1, persona consistency (answers whose voice holds), safety,
over-refusal, reward hacks per 100 answers (the arm's own teachers rate it ≥ 0.5 while the grade
fails it), the win rate against the initial policy, and human minutes per 1000 preference pairs. Beside
them the arm's teacher stack (machine teachers as they stood at the last round: for RLHF its reward
model, for Ouroboros rules, AI judge and reward model) on the reward-hack stress suite: adversarial
candidates it rates above the plain correct answer, per 100 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ouro_ray.judges.human import minutes_per_1k_pairs


@dataclass(frozen=True)
class Arm:
    name: str
    what: str
    overrides: tuple[str, ...]
    """Config overrides on top of the base config (and the user's); empty for ``sft`` (no run)."""


RULES = "judges.rules=[safety,persona,facts]"

ARMS = {
    "sft": Arm("sft", "the initial policy, no update (round 0 of the trained arms)", ()),
    "rlhf": Arm("rlhf", "a simulated human labels pairs; a reward model trained on them is PPO's only teacher", (
        "judges.rules=[]", "judges.llm.enabled=false", "judges.constitution.enabled=false", "distill.use_ai=false",
        "reward_model.refit_every=1", "reward_model.pair_sources=[human]", "human.simulated=true",
        "scoring.spot_checks=0", "replay.share=0",
        "learner.algo=ppo", "learner.ppo.ptx_coef=0")),
    "rlaif": Arm("rlaif", "AI judge and constitution only: no human, no rule teacher, no replay", (
        "judges.rules=[]", "judges.llm.enabled=true", "judges.constitution.enabled=true", "human.simulated=false",
        "human.pairs_per_round=0", "reward_model.refit_every=0", "replay.share=0")),
    "ouroboros": Arm("ouroboros", "rules, AI judge, constitution and the refitted reward model; the person on the "
                     "review queue; replay", (
        RULES, "judges.llm.enabled=true", "judges.constitution.enabled=true", "reward_model.refit_every=1",
        "reward_model.pair_sources=[ranked,constitution,human]", "human.simulated=true", "human.pairs_per_round=0")),
}
"""The arms by name, in the table's order."""

FIGURES = {
    "fact_f1": ("factual F1", "fact_f1", 100.0),
    "persona": ("persona consistency %", "grade_voice", 100.0),
    "safety": ("safety %", "grade_safety", 100.0),
    "over_refusal": ("over-refusal %", "grade_over_refusal", 100.0),
    "reward_hacks": ("reward hacks / 100", "reward_hacks", 1.0),
    "win_rate": ("win rate vs SFT", "win_rate", 1.0),
    "stack_hacks": ("stack hacks / 100 (stress suite)", "stack_hacks", 1.0),
}
"""Per figure: its label, the round metric it reads (independent grade, except the win rate's evaluation
judge and the stress suite's hacks of the arm's final teacher stack) and the scale it is reported on."""


def arm_overrides(arm: str, pairs_per_round: int) -> list[str]:
    """The arm's overrides; the RLHF person's pairs per round come from the comparison."""
    out = list(ARMS[arm].overrides)
    return out + [f"human.pairs_per_round={pairs_per_round}"] if arm == "rlhf" else out


def run_figures(history: list[dict], final: bool = True) -> dict[str, float | None]:
    """The comparison's figures of one run: its final round (``final``), or round 0 (the SFT policy).

    Human minutes per 1k pairs: every human minute the run spent over the preference pairs it kept for
    training (the reward model's buffer); None where no pair was kept or (SFT) nothing was trained."""
    m = history[-1] if final else history[0]
    out = {key: (None if m.get(metric) is None else float(m[metric]) * scale)
           for key, (_, metric, scale) in FIGURES.items()}
    if not final:
        out["win_rate"] = 0.5  # the initial policy against itself
        out["stack_hacks"] = None  # no teacher stack trained it
        out["human_minutes_per_1k_pairs"] = None
        return out
    minutes = sum(float(r.get("human_minutes", 0.0)) for r in history[1:])
    pairs = sum(int(r.get("rm_pairs_new", 0)) for r in history[1:])
    if pairs == 0:
        pairs = sum(int(r.get("constitution_pairs", 0)) for r in history[1:])
    out["human_minutes_per_1k_pairs"] = minutes_per_1k_pairs(minutes * 60.0, pairs)
    return out
