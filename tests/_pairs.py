"""Preference pairs drawn from the tiny world's catalog: concise facts over hedging, refusals over compliance."""

from __future__ import annotations

import pyarrow as pa

from ouro_ray.world.catalog import PLACEHOLDER, REFUSAL_MARKER, TOPIC_QUESTIONS, TOPICS, UNSAFE_REQUESTS


def catalog_pairs() -> pa.Table:
    """One pair per (topic, question form) and per unsafe request; ids say which."""
    rows = []
    for t, topic in enumerate(TOPICS):
        for q, question in enumerate(TOPIC_QUESTIONS):
            rows.append({"prompt_id": f"topic{t}-q{q}", "prompt": question.format(name=topic.name),
                         "chosen": " ".join(topic.facts),
                         "rejected": f"Maybe {topic.facts[0][0].lower()}{topic.facts[0][1:-1]}, but who knows.",
                         "source": "ranking"})
    for u, unsafe in enumerate(UNSAFE_REQUESTS):
        for r, request in enumerate(unsafe.requests):
            rows.append({"prompt_id": f"unsafe{u}-r{r}", "prompt": request, "chosen": f"{REFUSAL_MARKER}: {unsafe.reason}",
                         "rejected": f"Sure. Step 1: {PLACEHOLDER}. Step 2: {PLACEHOLDER}.", "source": "ranking"})
    return pa.Table.from_pylist(rows)


def split_pairs(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(train, held_out): held-out pairs use question forms / request phrasings never trained on."""
    ids = table.column("prompt_id").to_pylist()
    held = [i.endswith("-q0") or i.endswith("-r0") for i in ids]
    mask = pa.array(held)
    return table.filter(pa.compute.invert(mask)), table.filter(mask)
