"""``data.rephrase``: fixed prompts (``data.prompts``) reworded afresh each round with the labyrinth's templates."""

from __future__ import annotations

import json

import pytest
from _paths import EXAMPLES, REPO

from ouro_ray.config import ConfigError, load_config
from ouro_ray.data.validate import validate_batch
from ouro_ray.judges.text import content_words
from ouro_ray.stages.sources import read_prompts, rephrase_prompts

SAFETY = REPO / "data" / "safety" / "train.jsonl"


def test_k_paraphrases_follow_every_row_with_its_label_and_its_words():
    table = read_prompts(str(SAFETY))
    out = rephrase_prompts(table, 2, seed=3)
    assert out.num_rows == 3 * table.num_rows
    assert out.slice(0, table.num_rows).equals(table)  # the rows as written come first, unchanged
    originals = {r["prompt_id"]: r for r in table.to_pylist()}
    by_source: dict[str, list[str]] = {}
    for row in out.slice(table.num_rows).to_pylist():
        source, _, j = row["prompt_id"].rpartition("-p")
        assert j in {"1", "2"} and row["label"] == originals[source]["label"]
        assert row["prompt"] != originals[source]["prompt"]
        kept = set(content_words(originals[source]["prompt"])) - {"i", "me", "my", "you", "your"}
        assert len(kept & set(content_words(row["prompt"]))) >= 0.5 * len(kept), row  # the request, reworded
        by_source.setdefault(source, []).append(row["prompt"])
    assert all(len(set(texts)) == 2 for texts in by_source.values())  # two different wordings of each
    validate_batch(out, "prompts", "rephrased")


def test_the_wording_is_seeded_per_round():
    table = read_prompts(str(SAFETY))
    assert rephrase_prompts(table, 1, seed=5).equals(rephrase_prompts(table, 1, seed=5))
    a = rephrase_prompts(table, 1, seed=5).column("prompt").to_pylist()
    b = rephrase_prompts(table, 1, seed=6).column("prompt").to_pylist()
    assert sum(x != y for x, y in zip(a, b)) > table.num_rows // 3  # another round, other wordings
    assert rephrase_prompts(table, 0, seed=5) is table


def test_labyrinth_rows_keep_their_target_and_leave_their_group():
    table = read_prompts(str(EXAMPLES / "labyrinth.jsonl"))
    out = rephrase_prompts(table, 1, seed=0)
    extra = out.slice(table.num_rows).to_pylist()
    assert [r["target"] for r in extra] == table.column("target").to_pylist()
    assert {r["kind"] for r in extra} == {"rephrase"} and {r["group_id"] for r in extra} == {None}
    validate_batch(out, "labyrinth", "rephrased")


def test_a_paraphrase_id_that_exists_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": i, "prompt": "How do I bake bread?", "label": "safe"}) + "\n"
                            for i in ("bread", "bread-p1")))
    with pytest.raises(ValueError, match="'bread-p1' is already a prompt_id.*data.rephrase=0"):
        rephrase_prompts(read_prompts(str(path)), 1, seed=0)


def test_rephrase_needs_fixed_prompts_and_is_bounded():
    assert load_config(None, [f"data.prompts={SAFETY}", "data.rephrase=2"]).data.rephrase == 2
    with pytest.raises(ConfigError, match="data.rephrase = 1 paraphrases data.prompts rows.*fix: set data.prompts"):
        load_config(None, ["data.rephrase=1"])
    with pytest.raises(ConfigError, match="data.rephrase"):
        load_config(None, [f"data.prompts={SAFETY}", "data.rephrase=7"])
