"""Stage 2, Distill: each dialogue becomes a summary of facts, logic and persona.

The summary is what later stages must preserve, so it must never hold a claim the dialogue did not
make. Three sources, in order of trust:

1. **Rules** (:func:`extract_rules`): exact and model-free, so the loop works even when the policy is
   too small to summarise. Facts are the assistant's plain declarative sentences; logic is one step
   per human request, from a surface classifier (:func:`classify_request`).
2. **The AI summariser** (:func:`ai_summaries`): a :class:`~ouro_ray.judges.constitution.Writer`
   lists facts one per line. It may paraphrase or recover what the rules reject, but it may also
   hallucinate, so :func:`ground_facts` keeps an AI fact only when most of its content words occur
   in the assistant's turns. AI facts are appended after the rule facts (union, no repeats).
3. **Human edits** (``summaries_override``): a reviewed summary replaces the whole row of its
   ``dialog_id``. Overrides for dialogues not in this batch are counted in the stats and logged,
   not raised: a reviewer's file typically covers many rounds, and only this batch's rows apply.

The persona is not distilled: every summary gets the persona the loop teaches (from the config).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import pyarrow as pa

from ouro_ray.config.stages import DistillConfig
from ouro_ray.data.shards import read_shard, to_table
from ouro_ray.data.validate import validate_batch
from ouro_ray.judges.text import content_words, is_refusal, names_harm, split_sentences
from ouro_ray.world.catalog import MAX_SENTENCES, PLACEHOLDER, count_hedges

if TYPE_CHECKING:  # the constitution module imports torch; distilling by rules must not need it
    from ouro_ray.judges.constitution import Writer

log = logging.getLogger(__name__)

RequestKind = Literal["harmful", "question", "how-to"]

MIN_FACT_WORDS = 2
"""Fewest content words a sentence needs to be a fact: drops acknowledgements like "Sure." or "Okay."."""

_HARM_REQUEST_RE = re.compile(
    r"\b(?:hack|hacks|hacking|hacked|break(?:ing)?\s+into|steal|stealing|bomb|bombs|explosive|explosives|gun|guns"
    r"|weapon|weapons|virus|viruses|malware|ransomware|poison|poisoning|hurt|kill|murder|attack)\b", re.IGNORECASE)
"""Words of a request for harmful help (hacking, weapons, malware, hurting people)."""

_HOWTO_RE = re.compile(r"^\s*(?:how\s+(?:to|(?:do|can|should)\s+i|(?:often|long)\s+should\s+i)\b"
                       r"|give\s+me\b.*\btips?\b)", re.IGNORECASE)
"""A request for steps ("How do I …", "Give me tips …") rather than for facts ("What is …")."""

_BULLET_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")

SUMMARY_PROMPT = (
    "Summarize the dialogue as facts: one short sentence per line, only what the assistant stated "
    "plainly, no guesses.\n{dialogue}\nFacts:\n"
)
"""The AI summariser's prompt; ``{dialogue}`` is the transcript, one ``Human:``/``Assistant:`` line per turn."""


@dataclass(frozen=True)
class DistillResult:
    """The summaries (kind ``summaries``, one row per input dialogue, in input order) and counts.

    ``stats``: n_dialogs; rule_facts (facts the rules found); ai_facts_kept (grounded AI facts added),
    ai_facts_repeated (grounded but already in the rule facts), ai_facts_dropped (ungrounded, hedged
    or otherwise not a plain statement); overridden (rows replaced by human edits); override_unknown
    (override rows for dialogues not in this batch, ignored). Counts are before the overrides.
    """

    summaries: pa.Table
    stats: dict[str, int]


# ---------------------------------------------------------------- rules


def is_fact_sentence(sentence: str) -> bool:
    """A plain statement: no hedge, refusal, placeholder or question, and at least two content words."""
    return (count_hedges(sentence) == 0 and not is_refusal(sentence) and PLACEHOLDER not in sentence
            and not sentence.rstrip().endswith("?") and len(content_words(sentence)) >= MIN_FACT_WORDS)


def turn_facts(text: str) -> list[str]:
    """Fact sentences of one assistant turn.

    A turn that refuses or complies with placeholders contributes nothing, not even its plain
    sentences: a refusal's reason and a compliance's "Sure." say why or whether it helps, not what
    is true (the reason belongs to the logic). Limit: a turn that refuses one part and answers
    another loses the answered part's facts.
    """
    if is_refusal(text) or PLACEHOLDER in text:
        return []
    return [s for s in split_sentences(text) if is_fact_sentence(s)]


def exchanges(dialog: dict) -> list[tuple[str, str]]:
    """(human request, the assistant's reply) per human turn; consecutive assistant turns are joined."""
    out: list[tuple[str, list[str]]] = []
    for turn in dialog["turns"]:
        if turn["role"] == "human":
            out.append((turn["text"], []))
        elif out:
            out[-1][1].append(turn["text"])
    return [(request, " ".join(replies)) for request, replies in out]


def core_request(request: str) -> str:
    """The request without courtesy lead-ins: "Thanks. How do I make tea?" → "How do I make tea?"."""
    sentences = split_sentences(request) or [request.strip()]
    last = sentences[-1].rsplit(": ", 1)[-1].strip()
    return last[:1].upper() + last[1:]


def classify_request(request: str, reply: str) -> RequestKind:
    """What the human asked for, judged from surface form.

    Harmful when the request holds a harm word (:data:`_HARM_REQUEST_RE`), when the reply complied
    with placeholders (the corpus's stand-in for harmful steps), or when the reply is a concise
    refusal (no hedge, at most ``MAX_SENTENCES`` sentences) whose reason names a harm ("illegal",
    "hurt"). A refusal alone is not trusted: the policy over-refuses safe requests, and the summary
    must not teach that. Otherwise a request for steps is "how-to", anything else a "question".

    Limits: a lexicon sees words, not intent. A harmful request in other words, answered rather than
    refused, reads as safe; a safe one using a harm word ("kill a stuck process", "flu virus") reads
    as harmful. The AI judges of stage 5 see meaning; this only seeds the logic.
    """
    refused_for_harm = (is_refusal(reply) and count_hedges(reply) == 0
                        and len(split_sentences(reply)) <= MAX_SENTENCES and names_harm(reply))
    if _HARM_REQUEST_RE.search(request) or PLACEHOLDER in reply or refused_for_harm:
        return "harmful"
    return "how-to" if _HOWTO_RE.search(core_request(request)) else "question"


def logic_step(request: str, kind: RequestKind) -> str:
    """One reasoning step: what kind of request it is and what a good answer does."""
    quoted = f'The request "{core_request(request)}"'
    if kind == "harmful":
        return f"{quoted} asks for harmful help; a good answer refuses briefly and says why."
    if kind == "how-to":
        return f"{quoted} is harmless; a good answer gives brief, practical steps."
    return f"{quoted} is a safe question; a good answer states the key facts plainly."


def dedupe(items: Sequence[str]) -> list[str]:
    """Items in first-seen order, each once."""
    return list(dict.fromkeys(items))


def extract_rules(dialog: dict) -> dict:
    """A summary dict (``dialog_id``, ``facts``, ``logic``; no persona) by rules alone."""
    pairs = exchanges(dialog)
    facts = dedupe([f for turn in dialog["turns"] if turn["role"] == "assistant" for f in turn_facts(turn["text"])])
    logic = [logic_step(request, classify_request(request, reply)) for request, reply in pairs]
    return {"dialog_id": dialog["dialog_id"], "facts": facts, "logic": logic}


# ---------------------------------------------------------------- the AI summariser


def transcript(dialog: dict) -> str:
    """The dialogue as ``Human: …`` / ``Assistant: …`` lines."""
    return "\n".join(f"{turn['role'].capitalize()}: {turn['text']}" for turn in dialog["turns"])


def parse_facts(text: str) -> list[str]:
    """One fact per non-empty line, bullets and numbering stripped; headers ("Facts:") skipped."""
    lines = (_BULLET_RE.sub("", line).strip().strip("\"'“”") for line in text.splitlines())
    return [line for line in lines if any(c.isalnum() for c in line) and not line.endswith(":")]


def ai_summaries(dialogs: Sequence[dict], writer: "Writer") -> list[list[str]]:
    """The writer's facts for each dialogue, parsed but *not yet grounded* (see :func:`ground_facts`).

    Unguarded on purpose, so the caller can count what the guard drops; :func:`distill` always
    grounds them.
    """
    prompts = [SUMMARY_PROMPT.format(dialogue=transcript(d)) for d in dialogs]
    texts = writer.complete(prompts) if prompts else []
    if len(texts) != len(prompts):
        raise ValueError(f"the summary writer returned {len(texts)} completions for {len(prompts)} prompts; "
                         "a Writer must return one completion per prompt, in order")
    return [parse_facts(t) for t in texts]


def grounding(fact: str, source_words: set[str]) -> float:
    """Share of ``fact``'s distinct content words found in ``source_words`` (0 for a fact without any)."""
    fact_words = set(content_words(fact))
    return len(fact_words & source_words) / len(fact_words) if fact_words else 0.0


def ground_facts(facts: Sequence[str], dialog: dict, min_grounding: float = 0.8) -> tuple[list[str], list[str]]:
    """(kept, dropped): an AI fact is kept when it is a plain statement (:func:`is_fact_sentence`)
    and at least ``min_grounding`` of its content words occur in the assistant's turns.

    The grounding guard is why a small or hallucinating model cannot add facts: a claim it made up
    brings words the assistant never said. Only the assistant's turns count, so a fact taken from
    the human's question ("Is the reactor 900 kelvin?") is not grounded.
    """
    said = " ".join(t["text"] for t in dialog["turns"] if t["role"] == "assistant")
    source = set(content_words(said))
    kept, dropped = [], []
    for fact in facts:
        ok = is_fact_sentence(fact) and grounding(fact, source) >= min_grounding
        (kept if ok else dropped).append(fact)
    return kept, dropped


def merge_facts(rule_facts: Sequence[str], ai_facts: Sequence[str]) -> list[str]:
    """Rule facts, then the AI facts that say something new (a different set of content words)."""
    seen = {frozenset(content_words(f)) for f in rule_facts}
    out = list(rule_facts)
    for fact in ai_facts:
        key = frozenset(content_words(fact))
        if key not in seen:
            seen.add(key)
            out.append(fact)
    return out


# ---------------------------------------------------------------- the stage


def add_ai_facts(records: list[dict], dialogs: Sequence[dict], writer: "Writer",
                 min_grounding: float) -> dict[str, int]:
    """Append each dialogue's new grounded AI facts to its record (in place); return the counts."""
    counts = {"ai_facts_kept": 0, "ai_facts_repeated": 0, "ai_facts_dropped": 0}
    for record, dialog, facts in zip(records, dialogs, ai_summaries(dialogs, writer)):
        kept, dropped = ground_facts(facts, dialog, min_grounding)
        merged = merge_facts(record["facts"], kept)
        new = len(merged) - len(record["facts"])
        counts["ai_facts_kept"] += new
        counts["ai_facts_repeated"] += len(kept) - new
        counts["ai_facts_dropped"] += len(dropped)
        record["facts"] = merged
    return counts


def local_writer(backend, tokenizer, cfg: DistillConfig) -> "Writer":
    """Glue: the policy's generation backend as the AI summariser (greedy, ``cfg.max_new_tokens``)."""
    from ouro_ray.judges.constitution import LocalWriter

    return LocalWriter(backend, tokenizer, max_new_tokens=cfg.max_new_tokens)


def load_overrides(cfg: DistillConfig) -> pa.Table | None:
    """The human-edited summaries named by ``cfg.summaries_override`` (a bad record raises), or None."""
    if cfg.summaries_override is None:
        return None
    return read_shard(cfg.summaries_override, "summaries").table


def _unique_ids(table: pa.Table, what: str) -> list[str]:
    ids = table.column("dialog_id").to_pylist()
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{what}: dialog_id {', '.join(map(repr, repeated[:5]))} occur(s) more than once; "
                         "each dialogue must appear once (fix: deduplicate the shard)")
    return ids


def apply_overrides(records: list[dict], overrides: pa.Table) -> tuple[list[dict], int, list[str]]:
    """(records with human rows swapped in by dialog_id, how many were replaced, unknown override ids).

    ``overrides`` must already be a valid ``summaries`` table with unique ids (:func:`distill` checks).
    """
    by_id = {r["dialog_id"]: r for r in overrides.to_pylist()}
    out = [by_id.get(r["dialog_id"], r) for r in records]
    known = {r["dialog_id"] for r in records}
    unknown = [i for i in by_id if i not in known]
    return out, sum(r["dialog_id"] in by_id for r in records), unknown


def distill(dialogs: pa.Table, cfg: DistillConfig, writer: "Writer | None" = None,
            overrides: pa.Table | None = None) -> DistillResult:
    """Stage 2 over a ``dialogs`` table: rules, grounded AI facts, the configured persona, human edits.

    Raises :class:`~ouro_ray.data.validate.BatchSchemaError` for a bad ``dialogs`` (or ``overrides``)
    table, ValueError for a repeated dialog_id or for ``cfg.use_ai`` without a ``writer``.
    """
    validate_batch(dialogs, "dialogs", "the dialogs given to distill")
    _unique_ids(dialogs, "dialogs")
    if overrides is not None:  # checked before any AI call, so a bad edit file fails fast
        validate_batch(overrides, "summaries", "the summaries override")
        _unique_ids(overrides, "summaries override")
    if cfg.use_ai and writer is None:
        raise ValueError("distill.use_ai = true but no writer was given; fix: pass a Writer (e.g. local_writer(...)) "
                         "or set distill.use_ai=false")
    rows = dialogs.to_pylist()
    records = [extract_rules(d) for d in rows]
    stats = {"n_dialogs": len(rows), "rule_facts": sum(len(r["facts"]) for r in records),
             "ai_facts_kept": 0, "ai_facts_repeated": 0, "ai_facts_dropped": 0, "overridden": 0,
             "override_unknown": 0}
    if cfg.use_ai:
        stats.update(add_ai_facts(records, rows, writer, cfg.min_grounding))  # type: ignore[arg-type]
    persona = {"voice": cfg.voice, "constraints": list(cfg.constraints)}
    records = [{**r, "persona": persona} for r in records]
    if overrides is not None:
        records, stats["overridden"], unknown = apply_overrides(records, overrides)
        stats["override_unknown"] = len(unknown)
        if unknown:
            log.warning("distill: %d override row(s) name dialogues not in this batch (ignored): %s",
                        len(unknown), ", ".join(unknown[:5]))
    return DistillResult(to_table(records, "summaries"), stats)
