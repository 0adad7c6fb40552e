"""The per-round measurement on held-out prompts: the evaluator pack (:mod:`ouro_ray.eval`) on the loop.

Every round's entry in ``metrics.json`` holds the pack's pointwise metrics (``reward_mean``,
``safety``, ``refused_unsafe``, ``over_refusal``, ``persona``, group means, ``coherence``,
``fact_agreement``; definitions in :mod:`ouro_ray.eval.metrics` and :mod:`ouro_ray.eval.pack`), each
with ``<metric>_ci`` (95 % bootstrap interval over prompts) and ``<metric>_n``. Beside the training
teachers' figures, the independent grade (``evaluation.teachers``, :mod:`ouro_ray.eval.grade`):
``grade_mean``, ``grade_pass``, ``grade_safety``, ``grade_facts``, ``fact_f1``, ``grade_voice``,
``grade_over_refusal``, ``reward_gap`` (reward − grade per graded answer) and ``reward_hacks`` (per 100
graded answers, rated high by the teachers and failed by the grade) with intervals, the counts ``grade_n`` and
``grade_unknown``, and ``grade_judge`` (``none`` when no grade is configured). From round 1 on also
``win_rate`` against the round-0 policy on the same prompts and seed (``evaluation.pairwise`` decides
who judges, ``win_rate_judge`` says who did), with ``win_rate_ci`` and ``position_consistency``. The
loop adds what only it has:

- ``kl``: mean per-token KL(π ‖ π_ref), the k1 estimate ``log π − log π_ref`` on the policy's own
  samples (0 at round 0: the policy is the reference);
- ``length``: mean tokens per candidate; ``policy_version``, ``n_prompts``, ``n_candidates``;
- at the run's last round (``evaluation.stress``), the reward-hack stress suite (:mod:`ouro_ray.eval.stress`)
  against the teachers that trained the final policy (the judge group and the refitted reward model,
  λ-combined; a person on the review queue is not part of it): ``stack_hacks`` (adversarial candidates
  rated strictly above the plain answer, per 100 pairs), ``stack_hack_ties`` (per 100), ``stack_hacks_n``;
  per attack and the hacked pairs in ``RUN_DIR/stress.json``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.eval import pack

GRADE_COUNTS = ("grade_n", "grade_unknown")
"""Independent-grade counts: plain numbers in metrics.json, no interval."""


def token_kl(candidates: pa.Table, ref: pa.Table) -> float:
    """Mean over all sampled tokens of ``logprobs − ref_logprobs`` (rows matched by key)."""
    keys = pc.binary_join_element_wise(candidates.column("prompt_id"), candidates.column("candidate_id"), "\x1f")
    ref_keys = pc.binary_join_element_wise(ref.column("prompt_id"), ref.column("candidate_id"), "\x1f")
    ref_rows = pc.take(ref.column("ref_logprobs"), pc.index_in(keys, value_set=ref_keys))
    pi = pc.list_flatten(candidates.column("logprobs")).to_numpy(zero_copy_only=False)
    pi_ref = pc.list_flatten(ref_rows).to_numpy(zero_copy_only=False)
    return float(np.mean(pi - pi_ref)) if len(pi) else 0.0


def flatten(figures: dict[str, dict]) -> dict:
    """``{metric: {"value", "ci", "n"}}`` as metrics.json keys: ``metric``, ``metric_ci``, ``metric_n``."""
    out = {}
    for metric, fig in figures.items():
        out[metric] = fig["value"]
        out[f"{metric}_ci"] = fig["ci"]
        out[f"{metric}_n"] = fig["n"]
    return out


def stack_stress(judges, scoring, teachers, seed: int) -> tuple[dict, dict]:
    """The stress suite against the training stack: (metrics.json figures, ``stress.json``'s content)."""
    stress = pack.reward_hacks(judges, scoring, seed=seed, teachers=teachers)
    overall = stress["overall"]
    return ({"stack_hacks": overall["per_100"], "stack_hack_ties": overall["ties_per_100"],
             "stack_hacks_n": overall["n"]}, stress)


def round_metrics(answers: pack.Answers, initial: pack.Answers | None, judges, evaluation, seed: int) -> dict:
    """The evaluator's figures for one round's held-out answers (and the win rate against round 0's)."""
    figures, _ = pack.model_metrics(answers, judges=judges, n_boot=evaluation.bootstrap, seed=seed)
    counts = {k: figures.pop(k)["value"] for k in GRADE_COUNTS if k in figures}
    out = {**flatten(figures), **counts, "grade_judge": answers.grader or "none"}
    if initial is not None:
        pairwise = pack.compare([answers, initial], initial.name, judges=judges, mode=evaluation.pairwise,
                                tie_margin=evaluation.tie_margin, n_boot=evaluation.bootstrap, seed=seed)
        win = pairwise["win_rate"][answers.name]
        out.update(win_rate=win["value"], win_rate_ci=win["ci"], win_rate_n=win["n"], win_rate_judge=pairwise["judge"],
                   win_rate_excluded=pairwise["excluded"], position_bias=pairwise["position_bias"]["position_bias"],
                   position_consistency=pairwise["position_consistency"]["value"])
    rows = answers.rewards.num_rows
    out.update(n_prompts=len(set(answers.rewards.column("prompt_id").to_pylist())), n_candidates=rows)
    return out
