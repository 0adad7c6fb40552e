"""`ouro judge-eval`: every AI teacher graded against the tiny world's ground truth, on items it never trained on.

    ouro judge-eval [CONFIG] [--out DIR] [--pairs N] [--points N] [KEY=VALUE …]

The teachers are the ones the loop would run (``judges.*``, built by the judge worker exactly as a
Serve replica builds them): the local LLM judge, the HTTP judge, the rule checkers, a reward-model
teacher and the constitution. For each:

- **pairwise** (teachers that compare: LLM and HTTP judges): accuracy with both orders shown
  (swap-averaged), one-order accuracy, position consistency, calibration, per answer family;
- **pairwise by score** (every teacher): the pair ranked by the teacher's own reward;
- **pointwise**: agreement with the true digit per dimension (LLM and HTTP judges);
- **stress**: the reward-hack suite against the teacher alone (λ-combined as the loop does);
- **constitution**: how often its revision is better than the original by the ground-truth oracle
  (:mod:`ouro_ray.world.oracle`), and the precision of the DPO pairs it emits.

Items are drawn on the held-out side of the judge's split (held-out phrasings, catalog entries and
the ``injection`` family, :class:`~ouro_ray.world_judge.answers.Split`) and, for comparison, on the
training side with a fresh seed. The whole stack (every teacher, λ-combined) faces the stress suite
too. Writes ``DIR/judge_eval.json`` and ``judge_eval.md``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from ouro_ray.eval.judge_quality import Pair, heldout_pairs, heldout_points, pairwise_quality, pointwise_quality
from ouro_ray.judges.protocol import JudgeItem

GOAL = {"accuracy": 0.90, "position_consistency": 0.90}
"""The embedded judge's goals on held-out pairs (issue 14)."""


def by_score(judge: Any):
    """A pairwise verdict from a pointwise teacher: P(first better) is 1, 0 or 1/2 by its rewards."""
    def prefer(first: Sequence[JudgeItem], second: Sequence[JudgeItem]) -> list[float]:
        ra = [s.reward for s in judge.score(list(first))]
        rb = [s.reward for s in judge.score(list(second))]
        return [0.5 if a == b else float(a > b) for a, b in zip(ra, rb)]
    return prefer


def stress_alone(judge: Any, scoring: Any, seed: int) -> dict:
    """The reward-hack suite against one teacher, its verdicts λ-combined as the loop combines them. A prompt
    the teacher does not score (the facts rule on a harmful request) is left out and counted (``unscored``)."""
    from ouro_ray.eval.stress import hack_rates, stress_items
    from ouro_ray.judges.items import items_from_table, scores_table
    from ouro_ray.judges.scoring import combine

    verdicts = judge.score(items_from_table(stress_items(seed=seed)))
    unscored = {v.prompt_id for v in verdicts if not v.scores}
    rates = hack_rates(combine(scores_table([v for v in verdicts if v.prompt_id not in unscored]), scoring))
    return {"overall": rates["overall"], "per_attack": {k: v for k, v in rates.items() if k != "overall"},
            "unscored_prompts": len(unscored)}


def grade_teacher(judge: Any, sets: dict[str, tuple[list[Pair], list]], scoring: Any, n_boot: int,
                  seed: int) -> dict:
    """Every figure of one teacher, per item set (``held_out``, ``train_side``)."""
    out: dict[str, Any] = {"rater": judge.rater}
    for name, (pairs, points) in sets.items():
        part: dict[str, Any] = {}
        if hasattr(judge, "prefer"):
            part["pairwise"] = pairwise_quality(judge.prefer, pairs, n_boot=n_boot, seed=seed)
        part["pairwise_by_score"] = pairwise_quality(by_score(judge), pairs, n_boot=n_boot, seed=seed)
        if judge.rater == "ai":
            part["pointwise"] = pointwise_quality(judge.score, points, n_boot=n_boot, seed=seed)
        out[name] = part
    out["stress"] = stress_alone(judge, scoring, seed)
    return out


def constitution_quality(constitution: Any, points: list, n_boot: int, seed: int) -> dict:
    """Revisions against the originals by the ground-truth oracle; precision of the emitted pairs."""
    from ouro_ray.eval.judge_quality import rate
    from ouro_ray.world.oracle import grade

    items = [p.item for p in points]
    result = constitution.run(items)
    better, worse, gains = [], [], []
    for item, chain in zip(items, result.chains):
        before, after = grade(item.prompt, chain[0]), grade(item.prompt, chain[-1])
        if before.mean is None or after.mean is None:
            continue
        better.append(float(after.mean > before.mean))
        worse.append(float(after.mean < before.mean))
        gains.append(after.mean - before.mean)
    right = []
    for pair in result.pairs:
        chosen, rejected = grade(pair["prompt"], pair["chosen"]), grade(pair["prompt"], pair["rejected"])
        if chosen.mean is not None and rejected.mean is not None:
            right.append(float(chosen.mean > rejected.mean))
    return {"revision_better": rate(better, n_boot, seed), "revision_worse": rate(worse, n_boot, seed),
            "mean_gain": rate(gains, n_boot, seed), "pairs": len(result.pairs),
            "pair_precision": rate(right, n_boot, seed), "critique_chain": constitution.critique_chain}


def whole_stack(worker: Any, scoring: Any, seed: int) -> dict:
    from ouro_ray.eval.stress import run_stress
    from ouro_ray.judges.scoring import combine

    report = run_stress(lambda items: combine(worker.score(items, revise=False).scores, scoring), seed=seed)
    return {"overall": report.rates["overall"], "per_attack": {k: v for k, v in report.rates.items() if k != "overall"}}


def judge_eval(cfg: Any, n_pairs: int, n_points: int, say=lambda m: None) -> dict:
    """The report: every configured teacher on held-out and training-side items, and the whole stack."""
    from actors.judge_worker import JudgeWorker
    from ouro_ray.models.resolve import resolve_model
    from ouro_ray.world_judge.choice import resolve_judges

    policy_dir = str(resolve_model(cfg.model.path, cfg.world, cfg.seed, progress=say, key="model.path").model_dir)
    judges_cfg = resolve_judges(cfg, policy_dir, say)
    worker = JudgeWorker(judges_cfg, policy_dir, name="judge/eval")
    seed, n_boot = cfg.seed, cfg.evaluation.bootstrap
    sets = {"held_out": (heldout_pairs(n_pairs, seed, True), heldout_points(n_points, seed, True)),
            "train_side": (heldout_pairs(n_pairs, seed + 1, False), heldout_points(n_points, seed + 1, False))}
    report: dict[str, Any] = {"seed": seed, "n_pairs": n_pairs, "n_points": n_points, "goal": GOAL,
                              "judge_model": judges_cfg.llm.model if judges_cfg.llm.enabled else None,
                              "teachers": {}}
    for judge in worker.judges:
        started = time.perf_counter()
        say(f"grading {judge.name}")
        report["teachers"][judge.name] = {**grade_teacher(judge, sets, cfg.scoring, n_boot, seed),
                                          "seconds": round(time.perf_counter() - started, 1)}
    if worker.constitution is not None:
        say("grading the constitution (critique → revise)")
        report["constitution"] = constitution_quality(worker.constitution, sets["held_out"][1][:max(40, n_points // 4)],
                                                      n_boot, seed)
    say("the whole stack against the stress suite")
    report["stack_stress"] = whole_stack(worker, cfg.scoring, seed)
    return report
