"""``ouro compare``: every arm × seed as an ``ouro run`` into ``OUT/<arm>/seed_<s>``, then the table.

Resumable per arm and seed: a finished run (its ``state.json`` at the config's rounds) is read, not
rerun; an unfinished one is resumed (``ouro run --resume``); a missing one is started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from ouro_ray.compare.arms import ARMS, arm_overrides, run_figures

QUICK = ("rounds=1", "loop.prompts_per_round=8", "data.synthetic_dialogs=4", "evaluation.size=8", "evaluation.n=1",
         "evaluation.bootstrap=100", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=12",
         "judges.constitution.per_prompt=1", "judges.constitution.max_new_tokens=24")
"""``--quick``: a wiring check (one short round per arm), not figures to quote."""


def check_arms(arms: Sequence[str], seeds: int) -> list[str]:
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"--arms: unknown arm(s) {', '.join(unknown)}; fix: choose from {', '.join(ARMS)}")
    if not [a for a in arms if a != "sft"]:
        raise ValueError("--arms sft alone: SFT is measured as round 0 of the trained arms' runs; fix: add an arm, "
                         "e.g. --arms sft,rlaif")
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: must be at least 1 (3 or more for an interval worth reading)")
    return [a for a in ARMS if a in arms]  # the table's order


def _finished(run_path: Path, rounds: int) -> bool:
    try:
        state = json.loads((run_path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("completed_rounds", 0) >= rounds


def run_arm(config: str | None, overrides: list[str], run_path: Path, say: Callable[[str], None],
            run_fn: Callable | None = None) -> list[dict]:
    """One arm × seed: read when finished, resumed when started, else run; its metrics rounds."""
    from ouro_ray.loop.run import open_run, run

    run_fn = run_fn or run
    if run_path.is_dir() and (run_path / "config.yaml").is_file():
        cfg, run_dir = open_run(None, [], None, str(run_path))
        if _finished(run_path, cfg.rounds):
            say(f"{run_path}: finished before, read")
            return json.loads((run_path / "metrics.json").read_text(encoding="utf-8"))["rounds"]
        say(f"{run_path}: resuming")
    else:
        cfg, run_dir = open_run(config, overrides, str(run_path), None)
    return run_fn(cfg, run_dir)


def compare(config: str | None, overrides: list[str], arms: Sequence[str], seeds: int, out: Path, quick: bool,
            pairs_per_round: int | None = None, say: Callable[[str], None] = print,
            run_fn: Callable | None = None) -> dict:
    """Run every arm and seed, write the table; returns ``compare.json``'s content."""
    from ouro_ray.compare import report
    from ouro_ray.config import load_config

    arms = check_arms(arms, seeds)
    user = [*(QUICK if quick else ()), *overrides]
    base = load_config(config, user)
    pairs = pairs_per_round or base.loop.prompts_per_round or 16
    trained = [a for a in arms if a != "sft"]
    # SFT is round 0; its reward-hack figure needs teachers at round 0, which the RLHF arm lacks (no reward
    # model before its first refit): read it from the fullest teacher stack run
    sft_from = next(a for a in ("ouroboros", "rlaif", "rlhf") if a in trained)
    per_seed: dict[str, list[dict]] = {a: [] for a in arms}
    total, k = len(trained) * seeds, 0
    for seed in range(seeds):
        for arm in trained:
            k += 1
            path = out / arm / f"seed_{seed}"
            say(f"compare: run {k} of {total}: arm {arm}, seed {seed + 1} of {seeds} → {path}")
            history = run_arm(config, [*user, *arm_overrides(arm, pairs), f"seed={base.seed + seed}"], path, say, run_fn)
            per_seed[arm].append(run_figures(history))
            if "sft" in arms and arm == sft_from:
                per_seed["sft"].append(run_figures(history, final=False))
    table = report.aggregate(per_seed)
    from ouro_ray.config.judges import redact_overrides
    from ouro_ray.judges.human import label_times

    meta = {"config": config, "overrides": redact_overrides(list(overrides)), "quick": quick, "seeds": seeds,
            "rounds": base.rounds, "pairs_per_round": pairs, "arms": arms, "sft_from": sft_from,
            "human_seconds": label_times(base.human)}
    for path in report.write(out, table, per_seed, meta):
        say(f"wrote {path}")
    return {"meta": meta, "arms": table, "per_seed": per_seed}
