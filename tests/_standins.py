"""Stand-in rollout and reference roles, and an in-process :class:`Loop` around them with the real rule
teachers: for loop tests that exercise stages 5-7 and the measurement without a model or Ray."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa

from ouro_ray.config import load_config, to_dict
from ouro_ray.data import to_table
from ouro_ray.eval.heldout import builtin_heldout
from ouro_ray.loop.driver import Loop
from ouro_ray.loop.rundir import RunDir
from ouro_ray.world import oracle

HELD_OUT = 12


class Rollout:
    """Deterministic candidates: the catalog's own answer to every other one, a hedge otherwise."""

    def generate(self, prompts: pa.Table, seed: int, sampling=None) -> pa.Table:
        n = sampling.n if sampling is not None else 2
        rows = []
        for i, (pid, prompt) in enumerate(zip(prompts.column("prompt_id").to_pylist(),
                                              prompts.column("prompt").to_pylist())):
            entry, _ = oracle.place(prompt)
            for k in range(n):
                text = entry.canonical if entry is not None and (i + k) % 2 == 0 else "Maybe, who knows."
                rows.append({"prompt_id": pid, "candidate_id": f"c{k}", "text": text, "prompt_token_ids": [1, 2],
                             "token_ids": [3, 4], "logprobs": [-0.5, -0.5], "policy_version": 0})
        return to_table(rows, "candidates")


class Reference:
    """The sampled logprobs back (KL 0); -0.5 a token for ``token_sequences`` (a DPO pair's sides)."""

    def logprobs(self, candidates: pa.Table) -> pa.Table:
        if "logprobs" not in candidates.column_names:
            ref = [[-0.5] * len(ids) for ids in candidates.column("token_ids").to_pylist()]
            return pa.table({"prompt_id": candidates.column("prompt_id"), "candidate_id": candidates.column("candidate_id"),
                             "ref_logprobs": pa.array(ref, pa.list_(pa.float32()))})
        return candidates.select(["prompt_id", "candidate_id", "logprobs"]).rename_columns(
            ["prompt_id", "candidate_id", "ref_logprobs"])


def standin_loop(run_path, overrides: list[str]) -> Loop:
    """A :class:`Loop` into ``run_path`` with the stand-in roles and the rule teachers (no LLM judge)."""
    from actors.judge_worker import JudgeWorker

    cfg = load_config(None, ["judges.llm.enabled=false", "evaluation.n=2", "evaluation.bootstrap=100",
                             "scoring.spot_checks=3", *overrides])
    run = RunDir(run_path).create(to_dict(cfg))
    roles = SimpleNamespace(rollout=Rollout(), reference=Reference(), judges=JudgeWorker(cfg.judges), learner=None,
                            ensure_weights=lambda: None,
                            reward_model=None)
    return Loop(cfg, run, roles, "unused", builtin_heldout(0, HELD_OUT), source=None)
