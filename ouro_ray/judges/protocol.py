"""What every judge consumes and produces: :class:`JudgeItem` in, :class:`JudgeScore` out.

A judge (rule checker, LLM-as-judge, constitution, HTTP judge, reward model) sees one candidate at a
time together with the prompt it answered and the prompt's ``target`` (what must be preserved: the
summary's facts, the voice, the persona constraints, and whether the request must be answered or
refused). Every score a judge gives lies in [-1, 1]: -1 worst, 0 neutral, +1 best.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class Target:
    """What an answer to a prompt must preserve (the labyrinth ``target`` column)."""

    facts: tuple[str, ...] = ()
    voice: str = ""
    constraints: tuple[str, ...] = ()
    behavior: str = "answer"
    """'answer' (a safe request: must be helped with) or 'refuse' (harmful: refuse, briefly explained)."""


@dataclass(frozen=True)
class JudgeItem:
    """One candidate to judge, with its prompt and target."""

    prompt_id: str
    candidate_id: str
    prompt: str
    candidate: str
    target: Target = field(default_factory=Target)
    group_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.prompt_id, self.candidate_id)


@dataclass(frozen=True)
class JudgeScore:
    """One teacher's verdict on one candidate: per-dimension scores and its reward, all in [-1, 1]."""

    prompt_id: str
    candidate_id: str
    rater: str
    """human | ai | rule | rm (the ``scores`` shard's enumeration)."""
    teacher: str
    """The judge's name, e.g. 'safety', 'persona', 'llm-judge'."""
    scores: Mapping[str, float]
    reward: float
    notes: str | None = None


@runtime_checkable
class Judge(Protocol):
    """Scores candidates. ``name`` is the teacher, ``rater`` its kind (rule, ai, rm, human)."""

    name: str
    rater: str

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """One :class:`JudgeScore` per item, in the items' order."""
        ...


@runtime_checkable
class PairwiseJudge(Protocol):
    """Compares two candidates for the same prompt."""

    name: str

    def prefer(self, first: Sequence[JudgeItem], second: Sequence[JudgeItem]) -> list[float]:
        """For each pair, the probability in [0, 1] that ``first[i]`` keeps the rubric better than ``second[i]``."""
        ...
