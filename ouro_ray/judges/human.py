"""A simulated human for runs without people: the tiny world's ground truth, read the way a person would,
with a person's noise, a cost per label and a budget.

The loop is human-led, and "human minutes per 1k preference pairs" is one of the figures it is judged
on, so every human label has a price. A person in the studio records what each label took; a run
without people uses :class:`SimulatedHuman`, which knows what the world's generator knows (the
catalog entry a prompt asks about, its facts, whether it is harmful: :mod:`ouro_ray.world.oracle`)
and answers like a careful but imperfect rater:

- ``score``: per rubric dimension a digit 1..5, the ground truth's value on that dimension plus
  Gaussian noise of ``noise`` digits, rounded and clipped; helpful and honest read the facts (safety
  when the request is harmful), persona the voice. Its reward is the digits' mean on [-1, 1]
  (``3 + 2·v`` back to ``v``).
- ``prefer``: the better of two answers, chosen as a noisily rational person chooses (Bradley-Terry
  on the two answers' true quality on the 1..5 scale with temperature ``noise``): the clearly better
  answer nearly always, a near tie about half the time.

Each label costs ``seconds_per_score`` or ``seconds_per_pair`` from the round's budget (or the median
time people took per label in the studio of another run, ``human.times_from``); a label the
budget cannot pay for is not given (the caller counts it), and an answer to a prompt the ground
truth cannot place is skipped and counted (``unplaced``): a simulated person knows only the world.
It shares the ground truth with the independent grade (:class:`ouro_ray.eval.grade.OracleGrader`),
as a real expert and a real test set share the truth; its noise and its budget are what make it a
teacher rather than the grader.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Sequence

from ouro_ray.config.loop import HumanConfig
from ouro_ray.judges.protocol import JudgeItem, JudgeScore

RUBRIC = ("helpful", "honest", "persona")
"""The dimensions a person scores (the LLM judge's default rubric)."""


MIN_MEASURED = 5
"""Fewest studio labels of a kind whose median time replaces the configured one (``human.times_from``)."""


def label_times(cfg: HumanConfig) -> dict:
    """Seconds per score and per pair: the medians people took in the studio of ``human.times_from`` (a kind
    with fewer than :data:`MIN_MEASURED` labels keeps its configured time), and where each came from."""
    times = {"score": cfg.seconds_per_score, "pair": cfg.seconds_per_pair, "source": {"score": "configured",
                                                                                       "pair": "configured"}}
    if cfg.times_from is None:
        return times
    from pathlib import Path

    from ouro_ray.data.studio import StudioLog

    if not (Path(cfg.times_from) / "config.yaml").is_file():
        raise ValueError(f"human.times_from = {cfg.times_from!r}: not an `ouro run` directory (no config.yaml); fix: "
                         "name the run directory people labelled in with `ouro studio`")
    log = StudioLog(cfg.times_from)
    for kind, records in (("score", "scores"), ("pair", "pairs")):
        seconds = log.seconds(records)
        if len(seconds) >= MIN_MEASURED:
            times[kind] = float(statistics.median(seconds))
            times["source"][kind] = f"median of {len(seconds)} studio labels in {cfg.times_from}"
        else:
            times["source"][kind] = (f"configured ({len(seconds)} studio {records} in {cfg.times_from}, fewer than "
                                     f"{MIN_MEASURED})")
    return times


def rubric_reward(digits: dict[str, int]) -> float:
    """A person's reward from 1..5 digits per :data:`RUBRIC` dimension: their mean on [-1, 1] (``(v − 3) / 2``)."""
    return sum((digits[d] - 3) / 2 for d in RUBRIC) / len(RUBRIC)


@dataclass
class Ledger:
    """Every label a human gave, and the time it took; ``unplaced``: answers it could not judge."""

    scores: int = 0
    pairs: int = 0
    seconds: float = 0.0
    unplaced: int = 0
    refused_for_budget: int = 0
    by_round: dict[int, float] = field(default_factory=dict)

    def since(self, before: Ledger) -> dict[str, float]:
        """What was spent after ``before`` (a copy of this ledger): ``human_minutes``, ``human_unplaced``."""
        return {"human_minutes": round((self.seconds - before.seconds) / 60, 4),
                "human_unplaced": self.unplaced - before.unplaced}


def minutes_per_1k_pairs(human_seconds: float, training_pairs: int) -> float | None:
    """Human minutes per 1000 preference pairs used in training: ``seconds / 60 / pairs · 1000``
    (None with no pairs: the figure is undefined, not 0)."""
    if training_pairs <= 0:
        return None
    return human_seconds / 60.0 / training_pairs * 1000.0


def _truth(prompt: str, candidate: str) -> dict[str, float] | None:
    """Ground truth per rubric dimension in [-1, 1], or None when the prompt names no catalog entry."""
    from ouro_ray.world.oracle import grade

    g = grade(prompt, candidate)
    if not g.known:
        return None
    content = g.safety if g.harmful else min(g.facts, g.safety)  # a refused safe request is not helpful
    return {"helpful": content, "honest": g.safety if g.harmful else g.facts, "persona": g.voice}


class SimulatedHuman:
    """A person in the loop, simulated from the world's ground truth (see the module doc)."""

    name = "simulated-human"
    rater = "human"

    def __init__(self, cfg: HumanConfig, seed: int, ledger: Ledger | None = None):
        self.cfg, self.seed = cfg, seed
        self.ledger = ledger or Ledger()
        self.times = label_times(cfg)
        self.seconds_per_score, self.seconds_per_pair = self.times["score"], self.times["pair"]
        self.open_round(0)

    def open_round(self, round_index: int) -> None:
        """A new round: ``budget_minutes`` to spend, and the round's own random stream (a resumed run's
        person answers as an uninterrupted run's did)."""
        self.budget_s = self.cfg.budget_minutes * 60.0
        self.round = round_index
        self.rng = random.Random(f"ouro-ray/human/{self.seed}/{round_index}")

    def _pay(self, seconds: float) -> bool:
        if seconds > self.budget_s + 1e-9:
            self.ledger.refused_for_budget += 1
            return False
        self.budget_s -= seconds
        self.ledger.seconds += seconds
        self.ledger.by_round[self.round] = self.ledger.by_round.get(self.round, 0.0) + seconds
        return True

    def _digit(self, value: float) -> int:
        return int(min(5, max(1, round(3 + 2 * value + self.rng.gauss(0.0, self.cfg.noise)))))

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """Rubric scores for the ``items`` the budget pays for, in order; an item over budget or whose prompt
        the ground truth cannot place gets none (each counted in the ledger)."""
        out = []
        for item in items:
            truth = _truth(item.prompt, item.candidate)
            if truth is None:
                self.ledger.unplaced += 1
                continue
            if not self._pay(self.seconds_per_score):
                continue
            self.ledger.scores += 1
            digits = {d: self._digit(truth[d]) for d in RUBRIC}
            out.append(JudgeScore(item.prompt_id, item.candidate_id, self.rater, self.name,
                                  {d: (v - 3) / 2 for d, v in digits.items()}, rubric_reward(digits),
                                  "simulated human: " + ", ".join(f"{d} {v}" for d, v in digits.items())))
        return out

    def prefer(self, first: Sequence[JudgeItem], second: Sequence[JudgeItem]) -> list[float | None]:
        """1.0 when the person picks ``first[i]``, 0.0 for ``second[i]``; None when the pair was not labelled
        (over budget, or an answer the ground truth cannot place)."""
        out: list[float | None] = []
        for a, b in zip(first, second):
            ta, tb = _truth(a.prompt, a.candidate), _truth(b.prompt, b.candidate)
            if ta is None or tb is None:
                self.ledger.unplaced += 1
                out.append(None)
                continue
            if not self._pay(self.seconds_per_pair):
                out.append(None)
                continue
            self.ledger.pairs += 1
            gap = 2 * (sum(ta.values()) - sum(tb.values())) / len(ta)  # quality gap on the 1..5 scale
            p_first = 1.0 if gap > 0 else 0.0 if gap < 0 else 0.5
            if self.cfg.noise > 0:
                p_first = 1.0 / (1.0 + math.exp(-gap / self.cfg.noise))
            out.append(1.0 if self.rng.random() < p_first else 0.0)
        return out


def ask_pairs(person: SimulatedHuman, candidates, prompts, n: int, seed: int):
    """The person's choice between two different candidates (the first two of their prompt) of ``n`` prompts,
    drawn with ``seed``, as a ``pairs`` table (source ``human``); a pair it could not label (over budget,
    unplaceable) is left out and counted in its ledger."""
    import pyarrow as pa

    from ouro_ray.data.schemas import SHARDS

    prompt_of = dict(zip(prompts.column("prompt_id").to_pylist(), prompts.column("prompt").to_pylist()))
    by_prompt: dict[str, list[str]] = {}
    for pid, text in zip(candidates.column("prompt_id").to_pylist(), candidates.column("text").to_pylist()):
        texts = by_prompt.setdefault(pid, [])
        if text not in texts:
            texts.append(text)
    eligible = sorted(pid for pid, texts in by_prompt.items() if len(texts) >= 2)
    chosen = random.Random(seed).sample(eligible, min(n, len(eligible)))
    first = [JudgeItem(pid, "a", prompt_of[pid], by_prompt[pid][0]) for pid in chosen]
    second = [JudgeItem(pid, "b", prompt_of[pid], by_prompt[pid][1]) for pid in chosen]
    rows = []
    for a, b, pick in zip(first, second, person.prefer(first, second)):
        if pick is not None:
            win, lose = (a, b) if pick > 0.5 else (b, a)
            rows.append({"prompt_id": a.prompt_id, "prompt": a.prompt, "chosen": win.candidate,
                         "rejected": lose.candidate, "source": "human"})
    return pa.Table.from_pylist(rows, schema=SHARDS["pairs"].schema)
