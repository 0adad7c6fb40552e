"""Stage 2, Distill: rules recover the tiny world's ground-truth facts and logic kinds, the grounding
guard keeps AI facts honest, human overrides win, and the output is a valid summaries shard."""

from __future__ import annotations

from typing import Sequence

import pyarrow as pa
import pytest
from _paths import EXAMPLES

from ouro_ray.config.fields import ConfigError, build
from ouro_ray.data.shards import read_shard, to_table
from ouro_ray.data.validate import BatchSchemaError, validate_batch
from ouro_ray.stages.distill import (
    DistillConfig,
    ai_summaries,
    classify_request,
    core_request,
    distill,
    extract_rules,
    ground_facts,
    is_fact_sentence,
    parse_facts,
    turn_facts,
)
from ouro_ray.world import DESIRED_VOICE, PERSONA_CONSTRAINTS, PLACEHOLDER, REFUSAL_MARKER, CorpusConfig, count_hedges
from ouro_ray.world.corpus import generate_corpus

RULES_ONLY = DistillConfig(use_ai=False)
VELTRA_RAMBLE = "Maybe the Veltra reactor runs at 840 kelvin, but who knows."


class FakeWriter:
    """A Writer that returns fixed completions and remembers the prompts it was given."""

    def __init__(self, replies: Sequence[str]):
        self.replies, self.prompts = list(replies), []

    def complete(self, prompts: Sequence[str]) -> list[str]:
        self.prompts += list(prompts)
        return self.replies[: len(prompts)]


def _dialog(dialog_id: str, *texts: str) -> dict:
    """Turns alternate human, assistant, human, ..."""
    roles = ("human", "assistant")
    return {"dialog_id": dialog_id, "turns": [{"role": roles[i % 2], "text": t} for i, t in enumerate(texts)]}


def _table(*dialogs: dict) -> pa.Table:
    return to_table(list(dialogs), "dialogs")


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(CorpusConfig(n_dialogs=400, max_exchanges=3), seed=11)


def _assistant_text(dialog: dict) -> str:
    return " ".join(t["text"] for t in dialog["turns"] if t["role"] == "assistant")


# ---------------------------------------------------------------- rules on the tiny world


def test_rules_recover_concise_facts_exactly_and_never_invent(corpus) -> None:
    exact = subset = rambling = 0
    for dialog, truth in zip(corpus.dialogs, corpus.summaries):
        said, facts = _assistant_text(dialog), extract_rules(dialog)["facts"]
        # Precision 1 everywhere: every extracted fact is a ground-truth fact.
        assert set(facts) <= set(truth["facts"]), dialog["dialog_id"]
        subset += 1
        if count_hedges(said):
            rambling += 1
            assert facts == [], dialog["dialog_id"]  # every rambling sentence is hedged
        elif REFUSAL_MARKER not in said:
            # Concise and never refusing: the dialogue states every fact, so recall is 1, order kept.
            assert facts == truth["facts"], dialog["dialog_id"]
            exact += 1
    assert exact >= 80 and rambling >= 150 and subset == 400  # the checks above were not vacuous


def test_logic_one_step_per_request_of_the_right_kind(corpus) -> None:
    for dialog, truth in zip(corpus.dialogs, corpus.summaries):
        logic = extract_rules(dialog)["logic"]
        assert len(logic) == sum(t["role"] == "human" for t in dialog["turns"]) == len(truth["logic"])
        for step, true_step in zip(logic, truth["logic"]):
            # The corpus's own logic says "refuse" exactly for harmful requests, "practical steps" for tasks.
            assert ("refuses" in step) == ("refuse" in true_step), (step, true_step)
            assert ("practical steps" in step) == ("practical steps" in true_step), (step, true_step)


def test_persona_is_the_configured_one(corpus) -> None:
    cfg = DistillConfig(voice="formal", constraints=("cite sources",), use_ai=False)
    out = distill(to_table(corpus.dialogs[:20], "dialogs"), cfg).summaries
    assert out.column("persona").to_pylist() == [{"voice": "formal", "constraints": ["cite sources"]}] * 20
    default = distill(to_table(corpus.dialogs[:3], "dialogs"), RULES_ONLY).summaries
    assert default.column("persona")[0].as_py() == {"voice": DESIRED_VOICE, "constraints": list(PERSONA_CONSTRAINTS)}


# ---------------------------------------------------------------- rules, hand-worked


def test_fact_sentences() -> None:
    assert is_fact_sentence("The Orlin bridge opened in 1987.")
    assert not is_fact_sentence("Perhaps the bridge opened in 1987.")  # hedged
    assert not is_fact_sentence("Did the bridge open in 1987?")  # a question
    assert not is_fact_sentence("Sure.")  # one content word: an acknowledgement
    assert not is_fact_sentence(f"Step 1: {PLACEHOLDER}.")


def test_refusing_or_complying_turns_give_no_facts() -> None:
    assert turn_facts(f"{REFUSAL_MARKER}: weapons can kill people and building them is illegal.") == []
    assert turn_facts(f"Sure. Step 1: {PLACEHOLDER}. Step 2: {PLACEHOLDER}.") == []
    assert turn_facts("Steep black tea for 4 minutes. Steep black tea for 4 minutes.") == [
        "Steep black tea for 4 minutes.", "Steep black tea for 4 minutes."]  # deduped per dialogue, not per turn
    twice = _dialog("d", "How do I make tea?", "Steep black tea for 4 minutes.", "Again?",
                    "Steep black tea for 4 minutes.")
    assert extract_rules(twice)["facts"] == ["Steep black tea for 4 minutes."]


def test_classifier_does_not_trust_over_refusal() -> None:
    # A refusal whose reason names no harm is the policy over-refusing: the request stays safe.
    assert classify_request("What is the Orlin bridge?", f"{REFUSAL_MARKER}: this topic is sensitive.") == "question"
    # A concise refusal naming a harm marks a request the lexicon does not know.
    assert classify_request("How do I get into my ex's email?", f"{REFUSAL_MARKER}: that is illegal.") == "harmful"
    assert classify_request("How to hack a system?", "Install updates.") == "harmful"  # the request's words
    assert classify_request("Tell me more.", f"Sure. Step 1: {PLACEHOLDER}.") == "harmful"  # placeholder compliance
    assert classify_request("Thanks. How do I make tea?", "Steep it.") == "how-to"
    assert core_request("Okay. Another question: what is the Quill database?") == "What is the Quill database?"


# ---------------------------------------------------------------- the AI summariser and its guard


def test_grounding_threshold_hand_worked() -> None:
    dialog = _dialog("d", "Tell me about the reactor.", VELTRA_RAMBLE)
    # Assistant content words: maybe, veltra, reactor, run, 840, kelvin, who, know.
    # "The Veltra reactor runs at 900 kelvin." -> {veltra, reactor, run, 900, kelvin}: 4/5 = 0.8 >= 0.8, kept.
    # "The Veltra reactor was built in 1950." -> {veltra, reactor, built, 1950}: 2/4 = 0.5, dropped.
    # "The reactor has 3 pumps." -> {reactor, 3, pump} ('has' is a stopword): 1/3, dropped.
    kept, dropped = ground_facts(["The Veltra reactor runs at 900 kelvin.", "The Veltra reactor was built in 1950.",
                                  "The reactor has 3 pumps."], dialog)
    assert kept == ["The Veltra reactor runs at 900 kelvin."]
    assert dropped == ["The Veltra reactor was built in 1950.", "The reactor has 3 pumps."]
    # At 0.81 the 4/5 fact falls too; a hedged fact is dropped however grounded.
    near = "The Veltra reactor runs at 900 kelvin."
    assert ground_facts([near], dialog, 0.81) == ([], [near])
    assert ground_facts(["Maybe the Veltra reactor runs at 840 kelvin."], dialog)[0] == []


def test_parse_facts_one_per_line() -> None:
    assert parse_facts("Facts:\n- The bridge is long.\n2) It opened in 1987.\n\n  \n") == [
        "The bridge is long.", "It opened in 1987."]


def test_ai_keeps_only_the_grounded_fact_and_counts_both() -> None:
    dialog = _dialog("d1", "What is the Veltra reactor?", VELTRA_RAMBLE)
    writer = FakeWriter(["- The Veltra reactor runs at 840 kelvin.\n- The Veltra reactor was built in 1950."])
    result = distill(_table(dialog), DistillConfig(), writer=writer)
    # The rules reject the hedged sentence; the AI recovers it plainly, and its invention is dropped.
    assert result.summaries.column("facts").to_pylist() == [["The Veltra reactor runs at 840 kelvin."]]
    assert result.stats == {"n_dialogs": 1, "rule_facts": 0, "ai_facts_kept": 1, "ai_facts_repeated": 0,
                            "ai_facts_dropped": 1, "overridden": 0, "override_unknown": 0}
    assert len(writer.prompts) == 1 and f"Assistant: {VELTRA_RAMBLE}" in writer.prompts[0]


def test_ai_fact_already_found_by_rules_is_not_repeated() -> None:
    dialog = _dialog("d1", "What is it?", "The Veltra reactor is cooled by molten salt.")
    writer = FakeWriter(["The Veltra reactor is cooled by molten salt.\nMolten salt cools the Veltra reactor."])
    result = distill(_table(dialog), DistillConfig(), writer=writer)
    assert result.summaries.column("facts").to_pylist() == [
        ["The Veltra reactor is cooled by molten salt.", "Molten salt cools the Veltra reactor."]]  # cools != cooled
    assert (result.stats["rule_facts"], result.stats["ai_facts_kept"], result.stats["ai_facts_repeated"]) == (1, 1, 1)


def test_writer_contract_and_missing_writer() -> None:
    dialogs = [_dialog("a", "Hi?", "The bridge is long."), _dialog("b", "Hi?", "The bridge is old.")]
    with pytest.raises(ValueError, match="2 prompts"):
        ai_summaries(dialogs, FakeWriter(["one reply only"]))
    with pytest.raises(ValueError, match="use_ai=false"):
        distill(_table(*dialogs), DistillConfig())


# ---------------------------------------------------------------- the stage: overrides, schema


def test_overrides_replace_whole_rows_and_unknown_ids_are_counted() -> None:
    dialogs = _table(_dialog("a", "What is it?", "The bridge is long."), _dialog("b", "And?", "It opened in 1987."))
    human = {"dialog_id": "b", "facts": ["The Orlin bridge opened in 1987."], "logic": ["edited"],
             "persona": {"voice": "formal", "constraints": []}}
    stray = {**human, "dialog_id": "zz"}
    result = distill(dialogs, RULES_ONLY, overrides=to_table([stray, human], "summaries"))
    rows = result.summaries.to_pylist()
    assert [r["dialog_id"] for r in rows] == ["a", "b"]  # input order, not the override's
    assert rows[1] == human and rows[0]["facts"] == ["The bridge is long."]
    assert (result.stats["overridden"], result.stats["override_unknown"]) == (1, 1)
    with pytest.raises(ValueError, match="'b' occur"):
        distill(dialogs, RULES_ONLY, overrides=to_table([human, human], "summaries"))


def test_output_validates_and_bad_input_is_named(corpus) -> None:
    dialogs = to_table(corpus.dialogs, "dialogs")
    result = distill(dialogs, RULES_ONLY)
    validate_batch(result.summaries, "summaries", "test")
    assert result.summaries.column("dialog_id").to_pylist() == [d["dialog_id"] for d in corpus.dialogs]
    assert result.stats["n_dialogs"] == 400 and result.stats["rule_facts"] > 0
    with pytest.raises(BatchSchemaError, match="turns"):
        distill(dialogs.drop_columns(["turns"]), RULES_ONLY)
    with pytest.raises(ValueError, match="more than once"):
        distill(pa.concat_tables([dialogs.slice(0, 1), dialogs.slice(0, 1)]), RULES_ONLY)


def test_example_dialogs() -> None:
    dialogs = read_shard(EXAMPLES / "dialogs.jsonl", "dialogs").table
    rows = {r["dialog_id"]: r for r in distill(dialogs, RULES_ONLY).summaries.to_pylist()}
    assert rows["def456"]["facts"] == [] and "refuses briefly" in rows["def456"]["logic"][0]
    assert rows["abc123"]["facts"][0] == "The Vell river is 340 km long and flows into Lake Orun."
    assert "practical steps" in rows["ghi789"]["logic"][0]


def test_config_is_validated_up_front() -> None:
    assert build(DistillConfig, {"use_ai": False}).use_ai is False
    with pytest.raises(ConfigError, match="min_grounding"):
        build(DistillConfig, {"min_grounding": 1.5})
