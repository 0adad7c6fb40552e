"""The arena: blind pairwise votes between two policies on the held-out prompts, and their ELO.

The models are every measured round of this run (``round_NNN/heldout_candidates.parquet``: the policy
after round N answering the held-out prompts, same sampling seed every round) and of each ``--compare``
run. A match is one held-out prompt and candidate index both models answered, the sides drawn at random;
the server remembers the matches it issued (by a random id), so a vote must name one of them, once:
a vote cannot be forged for a pair nobody was shown, nor replayed. Votes are evaluation, never training.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, StrictStr

from ouro_ray.eval.stats import bradley_terry, bradley_terry_intervals
from ouro_ray.studio.rundata import RunData, StudioError, parquet_rows

WINNERS = {"left": "a", "right": "b", "tie": "tie"}
"""A vote's winner as a Bradley-Terry outcome of (left, right)."""
MAX_OPEN_MATCHES = 10_000
"""Issued matches kept for their vote; the oldest is forgotten beyond this."""
N_BOOT = 400
"""Bootstrap resamples of the ELO intervals (the table is recomputed after every vote)."""


class MatchRequest(BaseModel):
    a: StrictStr
    b: StrictStr


class Vote(BaseModel):
    match_id: StrictStr
    winner: Literal["left", "right", "tie"]
    seconds: float = Field(ge=0, allow_inf_nan=False, description="how long the person took, measured by the page")


@dataclass(frozen=True)
class ArenaModel:
    """One policy in the arena: a measured round of a run."""

    name: str
    run: RunData
    round: int

    @property
    def path(self) -> Path:
        return self.run.round_dir(self.round) / "heldout_candidates.parquet"

    def answers(self) -> dict[tuple[str, str], str]:
        """(prompt_id, candidate_id) → the candidate's text."""
        rows = parquet_rows(self.path, ("prompt_id", "candidate_id", "text"))
        return {(r["prompt_id"], r["candidate_id"]): r["text"] for r in rows}


@dataclass(frozen=True)
class Match:
    left: ArenaModel
    right: ArenaModel
    prompt_id: str
    candidate_id: str


def short_names(paths: list[Path]) -> list[str]:
    """The shortest unique trailing part of each path (``sft/seed_0`` beside ``rlhf/seed_0``)."""
    parts = [p.parts for p in paths]
    for k in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def arena_models(run: RunData, compare: list[RunData]) -> list[ArenaModel]:
    """This run's measured rounds ("round k") and each compare run's ("<run name> round k")."""
    models = [ArenaModel(f"round {r}", run, r) for r in run.rounds("heldout_candidates.parquet")]
    for name, other in zip(short_names([o.path for o in compare]), compare):
        models += [ArenaModel(f"{name} round {r}", other, r) for r in other.rounds("heldout_candidates.parquet")]
    return models


def held_out_prompts(runs: list[RunData]) -> dict[str, str]:
    """prompt_id → prompt text over the runs' held-out sets (the first run that has it wins)."""
    texts: dict[str, str] = {}
    for run in reversed(runs):
        texts |= {r["prompt_id"]: r["prompt"] for r in parquet_rows(run.path / "heldout.parquet", ("prompt_id", "prompt"))}
    return texts


class Arena:
    """Issues matches, checks votes, and tallies the ELO of every model voted on so far."""

    def __init__(self, run: RunData, compare: list[RunData], rng: random.Random | None = None):
        self.run = run
        self.compare = compare
        self.runs = [run, *compare]
        self._rng = rng or random.Random(secrets.randbits(64))
        self._open: OrderedDict[str, Match] = OrderedDict()
        self._voted: set[str] = set()
        self._lock = threading.Lock()

    @property
    def models(self) -> dict[str, ArenaModel]:
        """The models by name, read now (a round that finished since the studio started is there)."""
        return {m.name: m for m in arena_models(self.run, self.compare)}

    def model(self, name: str, side: str) -> ArenaModel:
        models = self.models
        if name not in models:
            raise StudioError(404, f"{side} = {name!r}: no such model; the models are {', '.join(models) or 'none'}")
        return models[name]

    def draw(self, req: MatchRequest) -> dict:
        """A new match between models ``a`` and ``b``: a shared held-out answer slot, sides at random."""
        a, b = self.model(req.a, "a"), self.model(req.b, "b")
        if a.name == b.name:
            raise StudioError(422, f"a = b = {a.name!r}: pick two different models")
        answers_a, answers_b = a.answers(), b.answers()
        shared = sorted(set(answers_a) & set(answers_b))
        if not shared:
            raise StudioError(409, f"{a.name} and {b.name} answered no held-out prompt in common (different held-out "
                                   "sets); fix: compare runs made with the same config and seed")
        match_id = secrets.token_urlsafe(16)
        with self._lock:
            key = self._rng.choice(shared)
            left, right = (a, b) if self._rng.random() < 0.5 else (b, a)
            self._open[match_id] = Match(left, right, *key)
            while len(self._open) > MAX_OPEN_MATCHES:
                self._open.popitem(last=False)
        texts = {a.name: answers_a[key], b.name: answers_b[key]}
        prompt = held_out_prompts(self.runs).get(key[0], f"(prompt {key[0]}: text not found)")
        return {"match_id": match_id, "prompt": prompt, "left": texts[left.name], "right": texts[right.name]}

    def vote(self, vote: Vote) -> dict:
        """The ``votes`` record for a vote on an issued match; StudioError 409 if replayed, 404 if unknown."""
        with self._lock:
            if vote.match_id in self._voted:
                raise StudioError(409, "this match was already voted on; each match takes one vote; fix: draw a new "
                                       "match")
            match = self._open.pop(vote.match_id, None)
            if match is None:
                raise StudioError(404, f"match_id {vote.match_id!r}: no such match (never issued, or issued before the "
                                       "studio restarted); fix: draw a new match")
            self._voted.add(vote.match_id)
        return {"left": match.left.name, "right": match.right.name, "prompt_id": match.prompt_id,
                "candidate_id": match.candidate_id, "winner": vote.winner, "seconds": vote.seconds}

    def table(self) -> dict:
        return elo_table(self.run.log.read("votes").records)


def elo_table(votes: list[dict], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """ELO (Bradley-Terry) of every model in ``votes`` with 95 % bootstrap intervals (prompts resampled whole),
    and wins, losses and ties. ``prior``: 0, or 0.5 virtual ties per pair when someone won every match (the
    MLE would be infinite), as :func:`ouro_ray.eval.pairwise.summarise` does."""
    outcomes = [(v["left"], v["right"], WINNERS[v["winner"]]) for v in votes if v.get("winner") in WINNERS]
    if not outcomes:
        return {"votes": 0, "prior": 0.0, "rows": []}
    prior = 0.0
    try:
        elo = bradley_terry(outcomes)
    except ValueError:
        prior = 0.5
        elo = bradley_terry(outcomes, prior=prior)
    groups = [v["prompt_id"] for v in votes if v.get("winner") in WINNERS]
    intervals = bradley_terry_intervals(outcomes, groups=groups, n_boot=n_boot, seed=seed, prior=max(prior, 0.5))
    tally: dict[str, Counter] = {m: Counter() for m in elo}
    for left, right, winner in outcomes:
        tally[left]["wins" if winner == "a" else "losses" if winner == "b" else "ties"] += 1
        tally[right]["wins" if winner == "b" else "losses" if winner == "a" else "ties"] += 1
    rows = [{"model": m, "rating": elo[m], "low": intervals[m][0], "high": intervals[m][1],
             "wins": tally[m]["wins"], "losses": tally[m]["losses"], "ties": tally[m]["ties"]} for m in elo]
    return {"votes": len(outcomes), "prior": prior, "rows": sorted(rows, key=lambda r: -r["rating"])}
