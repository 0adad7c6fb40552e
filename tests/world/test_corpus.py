"""The synthetic corpus: deterministic per seed, both voices, refusals and placeholder compliance in
the configured shares, no real harmful instructions, and records valid in the shard schemas."""

from __future__ import annotations

import math
import re

import pytest

from ouro_ray.data.shards import to_table
from ouro_ray.world import DESIRED_VOICE, PLACEHOLDER, REFUSAL_MARKER, SPECULATION_HEDGES, CorpusConfig, count_hedges
from ouro_ray.world.catalog import MAX_SENTENCES, TOPICS, UNSAFE_REQUESTS
from ouro_ray.world.corpus import generate_corpus

# Rates chosen away from the defaults, so a hard-coded rate would fail these tests.
RATES = CorpusConfig(n_dialogs=600, concise_rate=0.3, unsafe_rate=0.4, refusal_rate=0.7, over_refusal_rate=0.2)
UNSAFE_TEXTS = tuple(r.lower() for u in UNSAFE_REQUESTS for r in u.requests)


def _exchanges(corpus):
    """(dialog index, human text, assistant text) for every exchange."""
    for i, d in enumerate(corpus.dialogs):
        turns = d["turns"]
        for human, assistant in zip(turns[::2], turns[1::2]):
            assert (human["role"], assistant["role"]) == ("human", "assistant")
            yield i, human["text"], assistant["text"]


def _is_unsafe(request: str) -> bool:
    return request.lower().endswith(UNSAFE_TEXTS)


def _close(observed: int, n: int, rate: float) -> bool:
    """Within 4 binomial standard deviations (and one count) of ``rate * n``."""
    return abs(observed - rate * n) <= 4 * math.sqrt(n * rate * (1 - rate)) + 1


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?=\s|$)", text))


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    cfg = CorpusConfig(n_dialogs=50)
    assert generate_corpus(cfg, 3) == generate_corpus(cfg, 3)
    other = generate_corpus(cfg, 4)
    assert [d["turns"] for d in other.dialogs] != [d["turns"] for d in generate_corpus(cfg, 3).dialogs]


def test_n_dialogs_and_unique_ids() -> None:
    corpus = generate_corpus(CorpusConfig(n_dialogs=37), 0)
    ids = [d["dialog_id"] for d in corpus.dialogs]
    assert len(ids) == 37 == len(set(ids))
    assert ids == [s["dialog_id"] for s in corpus.summaries]


def test_records_are_valid_shards() -> None:
    corpus = generate_corpus(CorpusConfig(n_dialogs=40, max_exchanges=3), 1)
    assert to_table(corpus.dialogs, "dialogs").num_rows == 40
    assert to_table(corpus.summaries, "summaries").num_rows == 40


def test_voices_in_configured_share() -> None:
    corpus = generate_corpus(RATES, 11)
    hedged = {i for i, _, answer in _exchanges(corpus) if count_hedges(answer)}
    assert _close(len(hedged), RATES.n_dialogs, 1 - RATES.concise_rate)
    for i, _, answer in _exchanges(corpus):
        if i in hedged:  # rambling: every turn hedges (twice or more) and runs long
            assert count_hedges(answer) >= 2 and _sentences(answer) > MAX_SENTENCES, answer
        else:  # concise: no hedge at all, at most three sentences
            assert _sentences(answer) <= MAX_SENTENCES, answer


def test_refusals_and_placeholder_compliance_in_configured_share() -> None:
    corpus = generate_corpus(RATES, 12)
    unsafe = [(q, a) for _, q, a in _exchanges(corpus) if _is_unsafe(q)]
    safe = [(q, a) for _, q, a in _exchanges(corpus) if not _is_unsafe(q)]
    n = len(unsafe) + len(safe)
    assert _close(len(unsafe), n, RATES.unsafe_rate)
    refused = [a for _, a in unsafe if REFUSAL_MARKER in a]
    complied = [a for _, a in unsafe if REFUSAL_MARKER not in a]
    assert _close(len(refused), len(unsafe), RATES.refusal_rate)
    assert all(PLACEHOLDER in a for a in complied) and complied
    over_refused = [a for _, a in safe if REFUSAL_MARKER in a]
    assert _close(len(over_refused), len(safe), RATES.over_refusal_rate)


def test_refusals_explain_why() -> None:
    corpus = generate_corpus(RATES, 13)
    for _, q, a in _exchanges(corpus):
        if _is_unsafe(q) and REFUSAL_MARKER in a:
            reason = a.split(REFUSAL_MARKER, 1)[1]
            assert any(u.reason in reason for u in UNSAFE_REQUESTS), a


def test_no_real_harmful_instructions() -> None:
    """Every step of any compliance is the placeholder, nothing else."""
    corpus = generate_corpus(RATES, 14)
    steps = [s for _, _, a in _exchanges(corpus) for s in re.findall(r"Step \d+: (.*?)(?=\. |\.$)", a)]
    assert steps and set(steps) == {PLACEHOLDER}


def test_concise_topic_answers_state_the_facts() -> None:
    corpus = generate_corpus(RATES, 15)
    facts_of = {t.name: t.facts for t in TOPICS}
    checked = 0
    for _, q, a in _exchanges(corpus):
        name = next((n for n in facts_of if n in q), None)
        if name and not count_hedges(a) and REFUSAL_MARKER not in a:
            assert all(f in a for f in facts_of[name]), a
            checked += 1
    assert checked > 20


def test_summaries_hold_the_ground_truth() -> None:
    corpus = generate_corpus(RATES, 16)
    for dialog, summary in zip(corpus.dialogs, corpus.summaries):
        assert summary["persona"]["voice"] == DESIRED_VOICE
        assert "no speculation" in summary["persona"]["constraints"]
        assert len(summary["logic"]) == len(dialog["turns"]) // 2
        text = " ".join(t["text"] for t in dialog["turns"])
        for fact in summary["facts"]:  # a fact of a topic belongs to a topic the dialog asks about
            topic = next((t for t in TOPICS if fact in t.facts), None)
            assert topic is None or topic.name in text


@pytest.mark.parametrize("hedge", SPECULATION_HEDGES)
def test_count_hedges_finds_each_hedge_as_whole_words(hedge: str) -> None:
    assert count_hedges(f"Well, {hedge.upper()} it works.") == 1
    assert count_hedges("The mighty bridge opened in 1987.") == 0
