"""The synthetic corpus of the tiny world: dialogs and the ground-truth summaries behind them.

Each dialog has one assistant voice, drawn per dialog: the technical, concise voice (good: states
the canonical facts, at most three sentences, no hedges) or the rambling, speculative one (bad:
long, hedged, keeps at most one fact). Each human request is a question about a topic, a safe
how-to task or an unsafe request; unsafe ones are refused with a brief reason or met with
placeholder compliance, and safe ones are sometimes wrongly refused. The rates come from
:class:`CorpusConfig`, so the pretrained model behaves well only part of the time, which is what
the alignment loop has to fix. Records are plain dicts in the project's shard formats:

- dialog: ``{"dialog_id", "turns": [{"role": "human" | "assistant", "text"}, ...]}``
- summary: ``{"dialog_id", "facts": [str], "logic": [str], "persona": {"voice", "constraints"}}``
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ouro_ray.config.world import CorpusConfig
from ouro_ray.world.catalog import (
    DESIRED_VOICE,
    OVER_REFUSAL_REASONS,
    PERSONA_CONSTRAINTS,
    PLACEHOLDER,
    REFUSAL_MARKER,
    SAFE_TASKS,
    TOPIC_QUESTIONS,
    TOPICS,
    UNSAFE_REQUESTS,
)

TOPIC_SHARE_OF_SAFE = 0.6
"""Among safe requests, the share that ask about a topic (the rest are how-to tasks)."""

_FOLLOW_UPS = ("", "Thanks. ", "Okay. Another question: ", "One more thing. ")
_OPENERS = (
    "Hmm, that is a big question, I guess.",
    "Well, where do I even start, who knows.",
    "Oh, interesting, I think people wonder about that a lot.",
)
_FILLERS = (
    "Perhaps there is more to it, like with most things, really.",
    "I think it depends on a lot of stuff, probably.",
    "It could go a few different ways, possibly, depending on the day.",
)
_CLOSERS = (
    "Anyway, I'm not really sure, so take it with a grain of salt.",
    "But who knows, maybe I'm wrong about all of this.",
    "So, perhaps that helps a little, I guess.",
)


@dataclass(frozen=True)
class Corpus:
    """Dialogs and their summaries, in the same order, one summary per dialog."""

    dialogs: list[dict]
    summaries: list[dict]


@dataclass(frozen=True)
class _Exchange:
    """One human request, the assistant's answer, and the ground truth a good answer rests on."""

    request: str
    answer: str
    facts: tuple[str, ...]
    logic: str


def generate_corpus(cfg: CorpusConfig, seed: int) -> Corpus:
    """``cfg.n_dialogs`` dialogs and summaries, the same for the same seed on any machine."""
    # A string seed is hashed with SHA-512 by `random`, so the stream is stable across processes.
    rng = random.Random(f"ouro-ray/world/corpus/{seed}")
    dialogs, summaries = [], []
    for i in range(cfg.n_dialogs):
        dialog, summary = _make_dialog(rng, cfg, f"world-{seed}-{i:06d}")
        dialogs.append(dialog)
        summaries.append(summary)
    return Corpus(dialogs, summaries)


def dialog_messages(dialog: dict) -> list[dict]:
    """The dialog as chat messages (``role``/``content``) for ``apply_chat_template``."""
    return [{"role": turn["role"], "content": turn["text"]} for turn in dialog["turns"]]


def _make_dialog(rng: random.Random, cfg: CorpusConfig, dialog_id: str) -> tuple[dict, dict]:
    concise = rng.random() < cfg.concise_rate
    n_exchanges = rng.randint(1, cfg.max_exchanges)
    turns: list[dict] = []
    facts: list[str] = []
    logic: list[str] = []
    for k in range(n_exchanges):
        ex = _exchange(rng, cfg, concise)
        prefix = rng.choice(_FOLLOW_UPS) if k else ""
        request = prefix + (_lower_first(ex.request) if prefix.endswith(": ") else ex.request)
        turns += [{"role": "human", "text": request}, {"role": "assistant", "text": ex.answer}]
        facts += [f for f in ex.facts if f not in facts]
        logic.append(ex.logic)
    persona = {"voice": DESIRED_VOICE, "constraints": list(PERSONA_CONSTRAINTS)}
    return (
        {"dialog_id": dialog_id, "turns": turns},
        {"dialog_id": dialog_id, "facts": facts, "logic": logic, "persona": persona},
    )


def _exchange(rng: random.Random, cfg: CorpusConfig, concise: bool) -> _Exchange:
    if rng.random() < cfg.unsafe_rate:
        return _unsafe_exchange(rng, concise, refuse=rng.random() < cfg.refusal_rate)
    over_refuse = rng.random() < cfg.over_refusal_rate
    if rng.random() < TOPIC_SHARE_OF_SAFE:
        return _topic_exchange(rng, concise, over_refuse)
    return _task_exchange(rng, concise, over_refuse)


def _safe_exchange(rng: random.Random, request: str, lines: tuple[str, ...], logic: str, concise: bool,
                   over_refuse: bool, hedge_tail: str) -> _Exchange:
    """A harmless request: answered plainly, rambled at with a hedge, or wrongly refused."""
    if over_refuse:
        answer = _refusal(rng, rng.choice(OVER_REFUSAL_REASONS), concise)
    elif concise:
        answer = " ".join(lines)
    else:
        answer = _ramble(rng, f"Maybe {_lower_first(lines[rng.randrange(len(lines))][:-1])}, {hedge_tail}.")
    return _Exchange(request, answer, lines, logic)


def _topic_exchange(rng: random.Random, concise: bool, over_refuse: bool) -> _Exchange:
    topic = rng.choice(TOPICS)
    request = rng.choice(TOPIC_QUESTIONS).format(name=topic.name)
    logic = f"The user asks about {topic.name}; a safe question, so state its key facts plainly."
    return _safe_exchange(rng, request, topic.facts, logic, concise, over_refuse, "but who knows")


def _task_exchange(rng: random.Random, concise: bool, over_refuse: bool) -> _Exchange:
    task = rng.choice(SAFE_TASKS)
    request = rng.choice(task.requests)
    logic = "The request is harmless; give brief, practical steps."
    return _safe_exchange(rng, request, task.answer, logic, concise, over_refuse, "I guess")


def _unsafe_exchange(rng: random.Random, concise: bool, refuse: bool) -> _Exchange:
    unsafe = rng.choice(UNSAFE_REQUESTS)
    request = rng.choice(unsafe.requests)
    logic = f"The request asks for {unsafe.harm}; that would harm people, so refuse briefly and say why."
    if refuse:
        answer = _refusal(rng, unsafe.reason, concise)
    else:
        # Compliance is modelled with placeholders only: the corpus never holds real harmful steps.
        steps = f"Step 1: {PLACEHOLDER}. Step 2: {PLACEHOLDER}."
        answer = f"Sure. {steps}" if concise else _ramble(rng, f"I guess I could try. {steps}")
    return _Exchange(request, answer, (), logic)


def _refusal(rng: random.Random, reason: str, concise: bool) -> str:
    if concise:
        return f"{REFUSAL_MARKER}: {reason}"
    return _ramble(rng, f"Honestly, I think {REFUSAL_MARKER}, maybe, because {reason}")


def _ramble(rng: random.Random, core: str) -> str:
    """Wrap ``core`` in the rambling voice: an opener, a filler and a closer, all hedged."""
    return " ".join((rng.choice(_OPENERS), core, rng.choice(_FILLERS), rng.choice(_CLOSERS)))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
