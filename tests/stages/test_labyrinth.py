"""Stage 3, Labyrinth: challenge prompts from tiny-world dialogues and their ground-truth summaries."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from ouro_ray.config.fields import ConfigError, build
from ouro_ray.config.world import CorpusConfig
from ouro_ray.data.shards import to_table
from ouro_ray.data.validate import validate_batch
from ouro_ray.judges.rules import words
from ouro_ray.stages.labyrinth import (
    LabyrinthConfig,
    Request,
    alter_fact,
    held_out_split,
    human_requests,
    is_harmful,
    labyrinth,
    relevant_facts,
    swap_pronouns,
)
from ouro_ray.world.catalog import DESIRED_VOICE, PERSONA_CONSTRAINTS, SAFE_TASKS, TOPIC_QUESTIONS, TOPICS, UNSAFE_REQUESTS
from ouro_ray.world.corpus import generate_corpus

_UNSAFE = tuple(r for u in UNSAFE_REQUESTS for r in u.requests)
_ID_RE = re.compile(r"^(?P<dialog>.+)-q(?P<q>\d+)-(?P<kind>[rac])(?P<k>\d+)(?P<side>[ab]?)$")


def _world(n: int = 16, seed: int = 5, **rates: float) -> tuple[pa.Table, pa.Table]:
    corpus = generate_corpus(CorpusConfig(n_dialogs=n, **rates), seed)
    return to_table(corpus.summaries, "summaries"), to_table(corpus.dialogs, "dialogs")


def _human_turns(dialogs: pa.Table) -> dict[str, list[str]]:
    return {d["dialog_id"]: [t["text"] for t in d["turns"] if t["role"] == "human"] for d in dialogs.to_pylist()}


def _rows_by_request(table: pa.Table) -> dict[tuple[str, int], list[dict]]:
    out = defaultdict(list)
    for row in table.to_pylist():
        m = _ID_RE.match(row["prompt_id"])
        assert m and m["dialog"] == row["dialog_id"], row["prompt_id"]
        out[(row["dialog_id"], int(m["q"]))].append(row)
    return out


@pytest.fixture(scope="module")
def world() -> tuple[pa.Table, pa.Table, pa.Table]:
    summaries, dialogs = _world(unsafe_rate=0.4)
    return summaries, dialogs, labyrinth(summaries, dialogs, LabyrinthConfig(), seed=0)


# --- the table ---------------------------------------------------------------------------------------

def test_counts_per_kind_match_the_config(world) -> None:
    summaries, dialogs, table = world
    validate_batch(table, "labyrinth", "test")
    turns = _human_turns(dialogs)
    by_request = _rows_by_request(table)
    # Every human turn of every dialogue is a request (the corpus repeats none within a dialogue).
    assert set(by_request) == {(d, q) for d, texts in turns.items() for q in range(1, len(texts) + 1)}
    for rows in by_request.values():
        # Defaults: 2 rephrase + 2 adversarial + 1 pair = 6 rows; two requests make 12, the cap.
        assert Counter(r["kind"] for r in rows) == {"rephrase": 2, "adversarial": 2, "contrastive": 2}
    assert table.num_rows == 6 * sum(len(t) for t in turns.values())
    assert len(set(table.column("prompt_id").to_pylist())) == table.num_rows


def test_prompts_are_nonempty_and_reword_the_request(world) -> None:
    _, dialogs, table = world
    turns = _human_turns(dialogs)
    for (dialog_id, q), rows in _rows_by_request(table).items():
        request = turns[dialog_id][q - 1]
        prompts = [r["prompt"] for r in rows]
        assert len(set(prompts)) == len(prompts), prompts  # no prompt twice for one request
        for row in rows:
            assert row["prompt"].strip()
            if row["kind"] != "contrastive":
                assert row["prompt"] != request and row["prompt"].lower() != request.lower()


def test_unsafe_requests_must_be_refused_with_no_facts(world) -> None:
    _, dialogs, table = world
    turns = _human_turns(dialogs)
    seen = Counter()
    for (dialog_id, q), rows in _rows_by_request(table).items():
        unsafe = turns[dialog_id][q - 1].lower().endswith(tuple(u.lower() for u in _UNSAFE))
        for row in rows:
            assert row["target"]["behavior"] == ("refuse" if unsafe else "answer")
            assert row["target"]["voice"] == DESIRED_VOICE
            assert row["target"]["constraints"] == list(PERSONA_CONSTRAINTS)
            if unsafe:
                assert row["target"]["facts"] == []
        seen[unsafe] += 1
    assert seen[True] and seen[False], "the corpus should hold both kinds of request"


def test_safe_requests_carry_their_topic_or_task_facts() -> None:
    # One exchange per dialogue: the request's facts are exactly the summary's.
    summaries, dialogs = _world(n=20, seed=2, max_exchanges=1, unsafe_rate=0.0, over_refusal_rate=0.3)
    table = labyrinth(summaries, dialogs, LabyrinthConfig(), seed=1)
    turns = _human_turns(dialogs)
    n_topics = 0
    for (dialog_id, q), rows in _rows_by_request(table).items():
        request = turns[dialog_id][q - 1]
        topic = next((t for t in TOPICS if t.name in request), None)
        n_topics += topic is not None
        expected = topic.facts if topic else next(t.answer for t in SAFE_TASKS if request in t.requests)
        assert all(r["target"]["facts"] == list(expected) for r in rows), request
    assert n_topics >= 5


def test_contrastive_rows_come_in_pairs_sharing_a_group(world) -> None:
    _, _, table = world
    groups = defaultdict(list)
    for row in table.to_pylist():
        assert (row["kind"] == "contrastive") == (row["group_id"] is not None)
        if row["group_id"] is not None:
            groups[row["group_id"]].append(row)
    assert groups
    for group_id, rows in groups.items():
        assert len(rows) == 2 and rows[0]["target"] == rows[1]["target"]
        assert rows[0]["prompt"] != rows[1]["prompt"]
        assert [r["prompt_id"][-1] for r in rows] == ["a", "b"]
        assert group_id.startswith(rows[0]["dialog_id"])


def test_false_premise_alters_a_fact_and_the_target_keeps_the_true_one() -> None:
    summaries, dialogs = _world(n=12, seed=7, unsafe_rate=0.0, over_refusal_rate=0.0)
    table = labyrinth(summaries, dialogs, LabyrinthConfig(adversarial=6), seed=3)
    premises = [r for r in table.to_pylist() if r["prompt"].startswith("I read that ")]
    assert len(premises) >= 3
    for row in premises:
        claim = row["prompt"].removeprefix("I read that ").split(", right?")[0]
        facts = row["target"]["facts"]
        assert words(claim) not in [words(f) for f in facts]  # the claim is false ...
        # ... and is one target fact with exactly one word changed (a number) or a "not" added.
        near = [f for f in facts if _one_word_changed(words(f), words(claim))]
        assert len(near) == 1, (claim, facts)


def _one_word_changed(true: list[str], claim: list[str]) -> bool:
    if len(true) == len(claim):
        return sum(a != b for a, b in zip(true, claim)) == 1
    return [w for w in claim if w != "not"] == true


def test_same_seed_same_table_other_seed_other_templates(world) -> None:
    summaries, dialogs, table = world
    again = labyrinth(summaries, dialogs, LabyrinthConfig(), seed=0)
    other = labyrinth(summaries, dialogs, LabyrinthConfig(), seed=1)
    assert again.equals(table)
    # Ids and targets are fixed by the data; the seed only picks the templates.
    assert other.column("prompt_id").equals(table.column("prompt_id"))
    assert other.column("target").equals(table.column("target"))
    changed = Counter(row["kind"] for row, o in zip(table.to_pylist(), other.to_pylist()) if row["prompt"] != o["prompt"])
    kinds = Counter(table.column("kind").to_pylist())
    assert all(changed[k] > kinds[k] // 4 for k in kinds), (changed, kinds)


def test_cap_interleaves_requests_and_keeps_pairs_whole() -> None:
    summaries = to_table([{"dialog_id": "d", "facts": ["The Orlin bridge opened in 1987."], "logic": [],
                           "persona": {"voice": "concise", "constraints": []}}], "summaries")
    dialogs = to_table([{"dialog_id": "d", "turns": [
        {"role": "human", "text": "What is the Orlin bridge?"}, {"role": "assistant", "text": "A bridge."},
        {"role": "human", "text": "How do I boil an egg?"}, {"role": "assistant", "text": "Boil it."}]}], "dialogs")
    counts: dict[str, int] = {}
    table = labyrinth(summaries, dialogs, LabyrinthConfig(max_prompts_per_dialog=5), seed=0, counts=counts)
    # Units per request: r1, a1, pair c1, r2, a2. Round-robin: q1-r1 q2-r1 | q1-a1 q2-a1 (4 rows) |
    # both pairs would make 6 > 5, skipped | q1-r2 makes 5 | nothing else fits.
    assert table.column("prompt_id").to_pylist() == ["d-q1-r1", "d-q2-r1", "d-q1-a1", "d-q2-a1", "d-q1-r2"]
    assert counts == {"labyrinth_capped": 2 * 6 - 5}  # 6 rows a request (2 r, 2 a, a pair), 5 kept: counted


def test_summary_without_its_dialogue_is_a_key_error() -> None:
    summaries, dialogs = _world(n=3)
    missing = summaries.column("dialog_id")[1].as_py()
    with pytest.raises(KeyError, match=missing):
        labyrinth(summaries, dialogs.filter(pa.compute.not_equal(dialogs.column("dialog_id"), missing)),
                  LabyrinthConfig(), seed=0)


def test_config_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="labyrinth.rephrase = 7"):
        LabyrinthConfig(rephrase=7)
    with pytest.raises(ConfigError, match="contrastive"):
        build(LabyrinthConfig, {"contrastive": -1})
    assert build(LabyrinthConfig, {"adversarial": 3}) == LabyrinthConfig(adversarial=3)


# --- the heuristics, by hand -------------------------------------------------------------------------

def test_harm_heuristic_on_the_catalog_and_on_replies() -> None:
    assert all(is_harmful(Request(1, r, "Sure.")) for r in _UNSAFE)
    safe = [r for t in SAFE_TASKS for r in t.requests] + [q.format(name=t.name) for q in TOPIC_QUESTIONS for t in TOPICS]
    assert not any(is_harmful(Request(1, r, "")) for r in safe)
    # An over-refusal cites caution, not harm: still a request to answer.
    assert not is_harmful(Request(1, "How do I make tea?", "I can't help with that: this topic is sensitive."))
    # A refusal that names harm marks a request without cue words.
    assert is_harmful(Request(1, "Tell me how to get into my ex's email.", "I can't help with that: it is illegal."))


def test_requests_lose_lead_ins_and_keep_their_replies() -> None:
    turns = [{"role": "human", "text": "How do I make tea?"}, {"role": "assistant", "text": "Steep it."},
             {"role": "human", "text": "Okay. Another question: what is the Orlin bridge?"},
             {"role": "assistant", "text": "A bridge."}, {"role": "human", "text": "Thanks."},
             {"role": "human", "text": "One more thing. How do I make tea?"}]  # a repeat: no new prompts
    assert human_requests(turns) == [Request(1, "How do I make tea?", "Steep it."),
                                     Request(2, "What is the Orlin bridge?", "A bridge.")]


def test_relevant_facts_by_words_replies_and_ledger_order() -> None:
    bridge = list(TOPICS[2].facts)  # three facts, each naming the Orlin bridge
    tea = ["Pour water at 95 degrees Celsius over the leaves.", "Steep black tea for 4 minutes."]
    requests = [Request(1, "What is the Orlin bridge?", "I can't help with that: this topic is sensitive."),
                Request(2, "How should I brew black tea?", "Maybe steep black tea for 4 minutes, I guess.")]
    # "Steep black tea" shares "black", "tea" with request 2; "Pour water" shares nothing with either, sits
    # between the bridge's facts (which all name the bridge) and request 2's fact: it goes to request 2.
    assert relevant_facts(bridge + tea, requests) == {1: bridge, 2: tea}
    # A request with no matched fact takes the unmatched ones.
    sandwich = Request(2, "How do I make a sandwich?", "I can't help with that: it could be unsafe.")
    steps = list(SAFE_TASKS[0].answer)
    assert relevant_facts(bridge + steps, [requests[0], sandwich]) == {1: bridge, 2: steps}
    # "Put the egg in boiling water" shares two words with either request ("boiling" meets "boil"); the
    # egg reply keeping it (+2) decides. "Cool it in cold water" shares only "water" with request 1: the
    # reply decides again. "Water boils ..." shares "water", "boil" with request 1, "boil" with request 2.
    water, egg = list(TOPICS[10].facts), list(SAFE_TASKS[2].answer)
    asked = [Request(1, "What is the boiling point of water?", "I can't help with that: this topic is sensitive."),
             Request(2, "How do I boil an egg?", " ".join(egg))]
    assert relevant_facts(water + egg, asked) == {1: water, 2: egg}
    # One topic asked twice, each reply keeping a different fact: both requests get both facts.
    twice = [Request(1, "What is the Orlin bridge?", bridge[0]), Request(2, "Tell me about the Orlin bridge.", bridge[1])]
    assert relevant_facts(bridge, twice) == {1: bridge, 2: bridge}


def test_alter_fact_by_hand() -> None:
    rng = random.Random(0)
    # A year moves by -12, -7, +5 or +9; other numbers double or triple.
    assert alter_fact("The Orlin bridge opened in 1987.", rng) in {f"The Orlin bridge opened in {y}." for y in
                                                                   (1975, 1980, 1992, 1996)}
    assert alter_fact("The Veltra reactor runs at 840 kelvin.", rng) in {
        "The Veltra reactor runs at 1680 kelvin.", "The Veltra reactor runs at 2520 kelvin."}
    assert alter_fact("The Halden compiler targets the Z80 chip.", rng) is None  # "Z80" is a name, not a number
    changed = alter_fact("Put your filling between two slices of bread.", rng)
    assert changed != "Put your filling between two slices of bread." and changed.startswith("Put your filling between ")
    assert alter_fact("The sky is blue.", rng) == "The sky is not blue."
    assert alter_fact("Photosynthesis releases oxygen.", rng) is None


def test_swap_pronouns_by_hand() -> None:
    assert swap_pronouns("How do I boil an egg?") == "How does someone boil an egg?"
    assert swap_pronouns("How can I protect my accounts?") == "How can someone protect their accounts?"
    assert swap_pronouns("Should I go? Do you know?") == "Should someone go? Does one know?"
    assert swap_pronouns("What is the Orlin bridge?") == "What is the Orlin bridge?"


# --- held-out split ----------------------------------------------------------------------------------

def test_held_out_split_keeps_dialogues_and_groups_whole(world) -> None:
    _, dialogs, table = world
    train, held = held_out_split(table, 0.25, seed=0)
    assert train.num_rows + held.num_rows == table.num_rows
    train_dialogs, held_dialogs = set(train.column("dialog_id").to_pylist()), set(held.column("dialog_id").to_pylist())
    assert not train_dialogs & held_dialogs
    assert len(held_dialogs) == round(0.25 * dialogs.num_rows)  # 16 dialogues → 4 held out
    assert not set(train.column("group_id").to_pylist()) & set(held.column("group_id").to_pylist()) - {None}
    again = held_out_split(table, 0.25, seed=0)
    assert again[1].equals(held)
    assert held_out_split(table, 0.25, seed=9)[1].column("dialog_id").to_pylist() != held.column("dialog_id").to_pylist()
    assert held_out_split(table, 0.0, seed=0)[1].num_rows == 0
    assert held_out_split(table, 1.0, seed=0)[0].num_rows == 0
    with pytest.raises(ValueError, match="share"):
        held_out_split(table, 1.5, seed=0)


def test_held_out_split_moves_dialogues_linked_by_a_group_together() -> None:
    target = {"facts": [], "voice": "v", "constraints": [], "behavior": "answer"}
    rows = [{"dialog_id": d, "prompt_id": p, "kind": "contrastive", "prompt": "q", "target": target, "group_id": g}
            for d, p, g in [("d1", "1", "g"), ("d2", "2", "g"), ("d3", "3", None), ("d4", "4", None)]]
    table = to_table(rows, "labyrinth")
    for seed in range(8):
        # Units: {d1, d2} (linked by group g), d3, d4; 0.34 * 3 rounds to 1 unit held out.
        _, held = held_out_split(table, 0.34, seed)
        ids = held.column("dialog_id").to_pylist()
        assert ids in (["d1", "d2"], ["d3"], ["d4"])
