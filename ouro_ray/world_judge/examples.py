"""The judge's training and evaluation examples: the project's own judge prompts, labelled by ground truth.

Every example is one of the prompts the project sends a judge model (:mod:`ouro_ray.judges.rubric`,
stage 2's :data:`~ouro_ray.stages.distill.SUMMARY_PROMPT`) and the completion a competent judge gives:

- ``score``: the pointwise prompt of one dimension → the digit 1..5 from :func:`answers.grades`;
- ``pairwise``: two answers in a random order → ``1`` or ``2`` (the one of higher quality);
- ``contradiction``: two answers to one question → ``1`` (they contradict) or ``2``;
- ``critique`` / ``revise``: the constitution's two steps → the faults, then the ideal answer;
- ``summary``: a corpus dialogue → the facts its assistant stated plainly, one per line.

Score-type prompts are plain text (the LLM judge reads the next token after them); the writer's
prompts (critique, revise, summary) are chat turns, as :class:`~ouro_ray.judges.constitution.LocalWriter`
sends them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ouro_ray.config.judges import DEFAULT_PRINCIPLES
from ouro_ray.judges.protocol import JudgeItem, Target
from ouro_ray.judges.rubric import DIMENSIONS, contradiction_prompt, critique_prompt, judge_prompt, pairwise_prompt, revise_prompt
from ouro_ray.stages.distill import SUMMARY_PROMPT, transcript
from ouro_ray.world.catalog import DESIRED_VOICE, PERSONA_CONSTRAINTS
from ouro_ray.world_judge.answers import (
    Answer,
    Case,
    Split,
    answer,
    contradict,
    critique,
    families_for,
    grades,
    ideal_answer,
    make_case,
    quality,
)

PAIRWISE_DIMENSIONS = ("helpful", "honest", "persona")
"""The dimensions a pairwise prompt names (the LLM judge's default rubric)."""

MIN_GAP = 1.0
"""Pairs teach and test clear preferences: ground-truth qualities (1..5) at least this far apart."""

TASK_MIX = {"score": 0.4, "pairwise": 0.3, "contradiction": 0.08, "critique": 0.07, "revise": 0.07, "summary": 0.06}
"""Weight of each task when drawing examples (a pairwise draw yields two examples: both orders)."""


@dataclass(frozen=True)
class Example:
    """A judge prompt and the completion ground truth asks for; ``chat``: the prompt is a user turn."""

    task: str
    prompt: str
    completion: str
    chat: bool
    family: str = ""
    """The answer family (for a pairwise example, the worse answer's family), for per-family figures."""


def item_of(case: Case, text: str, cid: str = "c") -> JudgeItem:
    target = Target(case.facts, DESIRED_VOICE, PERSONA_CONSTRAINTS, "refuse" if case.harmful else "answer")
    return JudgeItem("p", cid, case.request, text, target)


def _answers(rng: random.Random, case: Case, split: Split, k: int) -> list[Answer]:
    return [answer(rng, case, f, split) for f in rng.sample(families_for(case, split), k)]


def score_example(rng: random.Random, split: Split) -> Example:
    case = make_case(rng, split)
    a = _answers(rng, case, split, 1)[0]
    dim = rng.choice(tuple(DIMENSIONS))
    grade = grades(case, a)[dim]
    return Example("score", judge_prompt(item_of(case, a.text), dim, DIMENSIONS[dim]), f" {grade}", False, a.family)


def pairwise_examples(rng: random.Random, split: Split, min_gap: float = MIN_GAP) -> list[Example]:
    """One pair of answers in both orders (so no slot can be learned as the better one); none when their
    qualities are closer than ``min_gap``."""
    case = make_case(rng, split)
    a, b = _answers(rng, case, split, 2)
    qa, qb = quality(case, a), quality(case, b)
    if abs(qa - qb) < min_gap:
        return []
    worse = (b if qa > qb else a).family
    ia, ib = item_of(case, a.text), item_of(case, b.text)
    return [Example("pairwise", pairwise_prompt(ia, ib, PAIRWISE_DIMENSIONS), " 1" if qa > qb else " 2", False, worse),
            Example("pairwise", pairwise_prompt(ib, ia, PAIRWISE_DIMENSIONS), " 2" if qa > qb else " 1", False, worse)]


def contradiction_example(rng: random.Random, split: Split) -> Example:
    case = make_case(rng, split)
    a, b = _answers(rng, case, split, 2)
    if rng.random() < 0.3:  # the same good answer twice, reworded or not: the "no" side needs weight
        a = b = answer(rng, case, "refuse" if case.harmful else "good", split)
    label = " 1" if contradict(a, b) else " 2"
    return Example("contradiction", contradiction_prompt(a.text, b.text), label, False, b.family)


def critique_example(rng: random.Random, split: Split) -> Example:
    case = make_case(rng, split)
    a = _answers(rng, case, split, 1)[0]
    principle = rng.choice(DEFAULT_PRINCIPLES)
    return Example("critique", critique_prompt(item_of(case, a.text), a.text, principle), critique(case, a), True,
                   a.family)


def revise_example(rng: random.Random, split: Split) -> Example:
    case = make_case(rng, split)
    a = _answers(rng, case, split, 1)[0]
    principle = rng.choice(DEFAULT_PRINCIPLES)
    prompt = revise_prompt(item_of(case, a.text), a.text, principle, critique(case, a))
    return Example("revise", prompt, ideal_answer(case), True, a.family)


def summary_example(dialog: dict, summary: dict) -> Example:
    """A corpus dialogue → the summary facts its assistant stated word for word (hedged ones are not stated)."""
    said = " ".join(t["text"] for t in dialog["turns"] if t["role"] == "assistant")
    facts = [f for f in summary["facts"] if f in said]
    return Example("summary", SUMMARY_PROMPT.format(dialogue=transcript(dialog)), "\n".join(facts), True)


_MAKERS = {"score": score_example, "contradiction": contradiction_example, "critique": critique_example,
           "revise": revise_example}


def make_examples(n: int, seed: int, split: Split, corpus: tuple[list[dict], list[dict]] | None = None,
                  mix: dict[str, float] = TASK_MIX) -> list[Example]:
    """``n`` examples drawn by ``mix`` (summaries from ``corpus``'s dialogues when given), seeded."""
    rng = random.Random(f"ouro-ray/world/judge/{seed}/{split.held_out}")
    tasks = list(mix)
    weights = [mix[t] for t in tasks]
    out: list[Example] = []
    while len(out) < n:
        task = rng.choices(tasks, weights)[0]
        if task == "summary":
            if corpus is None or not corpus[0]:
                continue
            i = rng.randrange(len(corpus[0]))
            out.append(summary_example(corpus[0][i], corpus[1][i]))
        elif task == "pairwise":
            out += pairwise_examples(rng, split)
        else:
            out.append(_MAKERS[task](rng, split))
    return out[:n]
