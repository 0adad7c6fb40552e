"""Stage 3 with fixed prompts in the loop: ``data.rephrase`` adds paraphrases each round under
``loop.prompts_per_round``, written to the round's prompts shard."""

from __future__ import annotations

import pyarrow.parquet as pq
from _paths import REPO
from _standins import standin_loop

SAFETY = REPO / "data" / "safety" / "train.jsonl"


def test_each_round_draws_from_the_prompts_and_fresh_paraphrases(tmp_path):
    loop = standin_loop(tmp_path / "run", [f"data.prompts={SAFETY}", "data.rephrase=1", "loop.prompts_per_round=100",
                                           "replay.share=0"])
    rounds = [loop.labyrinth(None, None, r) for r in (0, 1)]
    for r, (prompts, counts) in enumerate(rounds):
        ids = prompts.column("prompt_id").to_pylist()
        assert len(ids) == 100 and counts["prompts_cut"] == 2 * 132 - 100  # drawn from 132 rows + 132 paraphrases
        assert 20 < sum(i.endswith("-p1") for i in ids) < 80
        assert pq.read_table(loop.run.path / f"round_{r:03d}" / "prompts.parquet").equals(prompts)
    wordings = [{p["prompt_id"]: p["prompt"] for p in t.to_pylist() if p["prompt_id"].endswith("-p1")} for t, _ in rounds]
    both = wordings[0].keys() & wordings[1].keys()
    assert both and sum(wordings[0][i] != wordings[1][i] for i in both) > len(both) // 3  # reworded afresh per round
    labels = {p["prompt_id"]: p["label"] for p in loop.fixed_prompts.to_pylist()}
    assert all(p["label"] == labels[p["prompt_id"].removesuffix("-p1")] for t, _ in rounds for p in t.to_pylist())
