"""A built-in held-out prompt set from the tiny world's catalog, for `ouro eval` when nothing names one.

Every catalog request once (12 topic questions, 8 how-to tasks, 10 harmful requests), each in the
labyrinth's forms: a rephrasing, an adversarial prompt (pressure or a false premise for safe requests,
a jailbreak framing for harmful ones) and a contrastive pair. Targets come from the catalog: the
topic's facts or the task's answer sentences, ``refuse`` for harmful requests, the world's persona.
Prompt ids follow the labyrinth (``builtin-<entry>-q1-r1``, ``…-a1``, ``…-c1a``/``…-c1b`` in group
``…-g1``), so coherence under paraphrase reads them as it reads the loop's. Seeded and deterministic.
"""

from __future__ import annotations

import itertools
import random

import pyarrow as pa

from ouro_ray.data.shards import to_table
from ouro_ray.data.validate import validate_batch
from ouro_ray.seeding import derive_seed
from ouro_ray.stages.labyrinth import adversarial_prompts, contrastive_pairs, rephrasings
from ouro_ray.world.catalog import DESIRED_VOICE, PERSONA_CONSTRAINTS, SAFE_TASKS, TOPIC_QUESTIONS, TOPICS, UNSAFE_REQUESTS

PROMPT_SET = "built-in tiny-world held-out set"
"""How reports name this set."""


def catalog_requests(seed: int) -> list[tuple[str, str, tuple[str, ...], str]]:
    """``(stem, request, facts, behavior)`` for every catalog request, topics, tasks and harmful requests
    interleaved (so a capped set holds each); topic and task wordings seeded."""
    rng = random.Random(derive_seed(seed, "eval/builtin-requests"))
    topics = [(f"builtin-topic{i:02d}", rng.choice(TOPIC_QUESTIONS).format(name=t.name), t.facts, "answer")
              for i, t in enumerate(TOPICS)]
    tasks = [(f"builtin-task{i:02d}", rng.choice(t.requests), t.answer, "answer") for i, t in enumerate(SAFE_TASKS)]
    harms = [(f"builtin-harm{i}{j}", request, (), "refuse")
             for i, u in enumerate(UNSAFE_REQUESTS) for j, request in enumerate(u.requests)]
    return [r for trio in itertools.zip_longest(topics, tasks, harms) for r in trio if r is not None]


def _units(stem: str, request: str, facts: tuple[str, ...], behavior: str, seed: int, turn: int) -> list[list[dict]]:
    """One request's rows as units (a row, or a contrastive pair), the kinds rotated by ``turn`` so that a
    capped set still holds every kind."""
    rng = random.Random(derive_seed(seed, "eval/builtin", stem))
    target = {"facts": list(facts), "voice": DESIRED_VOICE, "constraints": list(PERSONA_CONSTRAINTS),
              "behavior": behavior}

    def row(kind: str, pid: str, prompt: str, group: str | None = None) -> dict:
        return {"dialog_id": stem, "prompt_id": f"{stem}-q1-{pid}", "kind": kind, "prompt": prompt,
                "target": target, "group_id": group}

    units = [[row("rephrase", "r1", rephrasings(request, rng, 1)[0])],
             [row("adversarial", "a1", adversarial_prompts(request, behavior, list(facts), rng, 1)[0])],
             [row("contrastive", f"c1{side}", p, f"{stem}-q1-g1")
              for side, p in zip("ab", contrastive_pairs(request, rng, 1)[0])]]
    return units[turn % 3:] + units[:turn % 3]


def builtin_heldout(seed: int, size: int | None = None) -> pa.Table:
    """The built-in held-out set as a ``labyrinth`` table: 120 prompts, or at most ``size`` taken round-robin
    over the requests (a contrastive pair is never split)."""
    per_request = [_units(stem, request, facts, behavior, seed, k)
                   for k, (stem, request, facts, behavior) in enumerate(catalog_requests(seed))]
    limit = size if size is not None else sum(len(u) for units in per_request for u in units)
    rows: list[dict] = []
    for layer in range(3):
        for units in per_request:
            if len(rows) + len(units[layer]) <= limit:
                rows += units[layer]
    table = to_table(rows, "labyrinth")
    validate_batch(table, "labyrinth", "built-in held-out set")
    return table
