"""Stage 7: hard cases feed the next round.

A prompt whose candidates' mean reward falls below ``replay.threshold`` enters the pool, labelled by
the failure that sank it: the ``teacher:dimension`` most often lowest among its candidates
(``safety:safety``, ``persona:no_speculation``, ``facts:content`` …). The next round draws
``replay.share`` of its training prompts from the pool round-robin over these failure clusters, so
every kind of failure comes back, not just the most common one. A replayed prompt gets the id
``{prompt_id}~r{round}`` so every candidate id in a run stays unique (human scores join by id).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pyarrow as pa

from ouro_ray.config.loop import ReplayConfig
from ouro_ray.seeding import derive_seed

REPLAY_SEP = "~r"


def failing_prompts(prompts: pa.Table, rewards: pa.Table, threshold: float, round_index: int) -> list[dict]:
    """Pool entries for this round's prompts scoring below ``threshold``: the prompt row + cluster + score."""
    per_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in rewards.select(["prompt_id", "reward", "failure"]).to_pylist():
        per_prompt[row["prompt_id"]].append(row)
    out = []
    for record in prompts.to_pylist():
        rows = per_prompt.get(record["prompt_id"])
        if not rows:
            continue
        mean = sum(r["reward"] for r in rows) / len(rows)
        if mean < threshold:
            failures = Counter(r["failure"] for r in rows if r["failure"])
            cluster = failures.most_common(1)[0][0] if failures else "unscored"
            out.append({"record": record, "cluster": cluster, "mean_reward": mean, "round": round_index})
    return out


def update_pool(pool: list[dict], new: list[dict], cfg: ReplayConfig) -> tuple[list[dict], int]:
    """The pool after this round (replayed prompts leave when they pass; the lowest ``max_pool`` stay) and
    how many entries ``max_pool`` cut."""
    by_root = {root_id(e["record"]["prompt_id"]): e for e in pool}
    for entry in new:  # a prompt that failed again replaces its older entry
        by_root[root_id(entry["record"]["prompt_id"])] = entry
    kept = sorted(by_root.values(), key=lambda e: (e["mean_reward"], e["record"]["prompt_id"]))
    return kept[:cfg.max_pool], max(0, len(kept) - cfg.max_pool)


def root_id(prompt_id: str) -> str:
    """The id a prompt had before any replay."""
    return prompt_id.split(REPLAY_SEP, 1)[0]


def clusters(pool: list[dict]) -> dict[str, int]:
    """Pool size per failure cluster."""
    return dict(sorted(Counter(e["cluster"] for e in pool).items()))


def draw(pool: list[dict], n: int, seed: int, round_index: int) -> tuple[list[dict], list[dict]]:
    """``(replayed records, the pool entries drawn)``: n prompts round-robin over clusters, seeded.

    The drawn entries leave the pool; they come back only if they fail again.
    """
    rng = random.Random(derive_seed(seed, "replay", round_index))
    by_cluster: dict[str, list[dict]] = defaultdict(list)
    for entry in pool:
        by_cluster[entry["cluster"]].append(entry)
    for entries in by_cluster.values():
        rng.shuffle(entries)
    drawn: list[dict] = []
    order = sorted(by_cluster)
    while len(drawn) < n and any(by_cluster.values()):
        for name in order:
            if by_cluster[name] and len(drawn) < n:
                drawn.append(by_cluster[name].pop())
    return [_replayed(e["record"], round_index) for e in drawn], drawn


def take(pool: list[dict], n: int, seed: int, round_index: int) -> tuple[list[dict], list[dict]]:
    """Draw up to ``n`` prompts from the pool (:func:`draw`): (their records for round ``round_index``, the
    pool without the drawn entries)."""
    records, drawn = draw(pool, min(n, len(pool)), seed, round_index)
    drawn_ids = {id(e) for e in drawn}
    return records, [e for e in pool if id(e) not in drawn_ids]


def _replayed(record: dict, round_index: int) -> dict:
    root = root_id(record["prompt_id"])
    out = {**record, "prompt_id": f"{root}{REPLAY_SEP}{round_index}"}
    if out.get("group_id"):
        out["group_id"] = f"{root_id(out['group_id'])}{REPLAY_SEP}{round_index}"
    return out
