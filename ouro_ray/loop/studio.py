"""What people did in ``ouro studio`` since the last round, turned into the next round's inputs.

The studio appends to ``RUN_DIR/studio/<kind>.jsonl`` (:mod:`ouro_ray.data.studio`); each round reads
the records it has not read yet (``state.json``'s ``studio_seen``: per kind, how many it consumed) and:

- **chats**: the dialogues themselves are in the chat shard, which stage 1 reads (``data.chat``); the
  records only carry the person's time;
- **summaries**: the newest edit of each dialogue is a human summary that wins over the distilled one
  (as ``distill.summaries_override`` does) whenever that dialogue is distilled; a dialogue edited after
  an earlier round distilled it is **revisited**: distilled again this round under the edit, so the
  labyrinth makes this round's prompts from the corrected summary;
- **scores** (review items of earlier rounds, 1..5 per rubric dimension): a prompt whose answers the
  person scored below ``replay.threshold`` on average joins the replay pool (cluster
  ``human:<lowest dimension>``: the failure the person saw); two answers of one prompt the person
  scored differently make a pair, the better one chosen;
- **pairs**: the person's choice between two candidates of one prompt, as a ``pairs`` row;
- **votes** (the arena): counted, never trained on (held-out answers stay held out).

Pairs (source ``human``) go where a person's pairs go: the reward model's buffer (``reward_model.*``)
and, with ``learner.algo=dpo``, the preference batch; with neither they are counted as unused. A
record naming no candidate, prompt or dialogue of the run is counted (``studio_unknown``), never
silently dropped; so are quarantined lines.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.data import read_shard
from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.studio import KINDS, RUBRIC_RANGE, StudioLog
from ouro_ray.judges.human import RUBRIC, rubric_reward
from ouro_ray.loop.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class StudioRound:
    """One round's share of the studio's records."""

    overrides: pa.Table | None = None
    """The newest human summary of every edited dialogue (``summaries``), for distill to apply."""
    revisit: list[str] = field(default_factory=list)
    """Dialogues edited since an earlier round distilled them: distilled again this round."""
    revisit_dialogs: pa.Table | None = None
    pairs: pa.Table | None = None
    replay: list[dict] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def _round_table(run: RunDir, r: int, names: tuple[str, ...], kind: str) -> pa.Table | None:
    for name in names:
        path = run.path / f"round_{r:03d}" / f"{name}.parquet"
        if path.is_file():
            return read_shard(path, kind).table
    return None


class StudioReader:
    """Reads the studio's new records for each round (see the module doc)."""

    def __init__(self, run: RunDir, replay_threshold: float):
        self.run, self.threshold = run, replay_threshold
        self.log = StudioLog(run.path)
        self._tables: dict[tuple[int, str], object] = {}

    def _table(self, r: int, what: str) -> pa.Table | None:
        if (r, what) not in self._tables:
            names, kind = {"candidates": (("candidates",), "candidates"), "dialogs": (("dialogs",), "dialogs"),
                           "prompts": (("labyrinth", "prompts"), None)}[what]
            if kind is None:  # a labyrinth run or a prompts run
                table = _round_table(self.run, r, ("labyrinth",), "labyrinth")
                table = table if table is not None else _round_table(self.run, r, ("prompts",), "prompts")
            else:
                table = _round_table(self.run, r, names, kind)
            self._tables[(r, what)] = table
        return self._tables[(r, what)]

    def read(self, seen: dict[str, int], batch_ids: set[str], r: int) -> tuple[StudioRound, dict[str, int]]:
        """This round's share: records after ``seen`` (per kind), ``batch_ids`` the dialogues stage 1 read
        this round; returns it and the new ``seen``."""
        out, new, unknown, quarantined, seconds = StudioRound(), {}, 0, 0, 0.0
        for kind in KINDS:
            records = self.log.read(kind)
            quarantined += records.quarantined
            new[kind] = records.records[seen.get(kind, 0):]
            seconds += sum(float(rec.get("seconds", 0.0)) for rec in new[kind])
        unknown += self._summaries(out, new["summaries"], batch_ids, r)
        pairs, n_unknown = self._pairs(new["pairs"])
        score_pairs, replay, n_bad = self._scores(new["scores"], r)
        unknown += n_unknown + n_bad
        parts = [t for t in (pairs, score_pairs) if t.num_rows]
        out.pairs = pa.concat_tables(parts) if parts else None
        out.replay = replay
        out.stats = {"studio_chats": len(new["chats"]), "studio_edits": len(new["summaries"]),
                     "studio_revisited": len(out.revisit), "studio_scores": len(new["scores"]),
                     "studio_pairs": 0 if out.pairs is None else out.pairs.num_rows,
                     "studio_replayed": len(replay), "studio_votes": len(new["votes"]),
                     "studio_unknown": unknown, "studio_quarantined": quarantined,
                     "studio_minutes": round(seconds / 60.0, 4)}
        if unknown:
            log.warning("round %d: %d studio record(s) name no dialogue, prompt or candidate of this run; counted "
                        "as studio_unknown, not used", r, unknown)
        return out, {kind: seen.get(kind, 0) + len(new[kind]) for kind in KINDS}

    # --- summaries -----------------------------------------------------------------------------------
    def _summaries(self, out: StudioRound, new: list[dict], batch_ids: set[str], r: int) -> int:
        latest = self.log.latest_summaries()
        if latest:
            rows = [{"dialog_id": d, "facts": e["facts"], "logic": e["logic"], "persona": e["persona"]}
                    for d, e in latest.items()]
            out.overrides = pa.Table.from_pylist(rows, schema=SHARDS["summaries"].schema)
        unknown, dialogs = 0, []
        for dialog_id in dict.fromkeys(rec["dialog_id"] for rec in new):
            if dialog_id in batch_ids:
                continue  # distilled this round anyway, under the edit
            found = self._dialog(dialog_id, r)
            if found is None:
                unknown += 1
                continue
            out.revisit.append(dialog_id)
            dialogs.append(found)
        if dialogs:
            out.revisit_dialogs = pa.concat_tables(dialogs)
        return unknown

    def _dialog(self, dialog_id: str, r: int) -> pa.Table | None:
        """The dialogue's row from the newest earlier round that distilled it."""
        for k in range(r - 1, -1, -1):
            table = self._table(k, "dialogs")
            if table is not None:
                hit = table.filter(pc.equal(table.column("dialog_id"), dialog_id))
                if hit.num_rows:
                    return hit.slice(0, 1)
        return None

    # --- scores and pairs ----------------------------------------------------------------------------
    def _index(self, r: int) -> tuple[dict, dict]:
        """Round r's candidate texts by (prompt_id, candidate_id) and prompt rows by prompt_id."""
        if (r, "index") not in self._tables:
            candidates, prompts = self._table(r, "candidates"), self._table(r, "prompts")
            texts = {} if candidates is None else dict(zip(zip(candidates.column("prompt_id").to_pylist(),
                                                               candidates.column("candidate_id").to_pylist()),
                                                           candidates.column("text").to_pylist()))
            rows = {} if prompts is None else {row["prompt_id"]: row for row in prompts.to_pylist()}
            self._tables[(r, "index")] = (texts, rows)
        return self._tables[(r, "index")]

    def _candidate(self, r: object, prompt_id: object, candidate_id: object) -> tuple[dict, str] | None:
        """(prompt row, candidate text) of a candidate of round ``r``, or None."""
        if not isinstance(r, int) or isinstance(r, bool) or r < 0:
            return None
        texts, prompts = self._index(r)
        text, prompt = texts.get((prompt_id, candidate_id)), prompts.get(prompt_id)
        return None if text is None or prompt is None else (prompt, text)

    def _pairs(self, records: list[dict]) -> tuple[pa.Table, int]:
        rows, unknown = [], 0
        for rec in records:
            chosen = self._candidate(rec.get("round"), rec.get("prompt_id"), rec.get("chosen"))
            rejected = self._candidate(rec.get("round"), rec.get("prompt_id"), rec.get("rejected"))
            if chosen is None or rejected is None or chosen[1] == rejected[1]:
                unknown += 1
                continue
            rows.append({"prompt_id": rec["prompt_id"], "prompt": chosen[0]["prompt"], "chosen": chosen[1],
                         "rejected": rejected[1], "source": "human"})
        return pa.Table.from_pylist(rows, schema=SHARDS["pairs"].schema), unknown

    def _scores(self, records: list[dict], r: int) -> tuple[pa.Table, list[dict], int]:
        """Pairs from two differently scored answers of one prompt, replay entries, and the unknown count.
        A later label of the same candidate replaces an earlier one."""
        latest = {(rec.get("round"), rec.get("prompt_id"), rec.get("candidate_id")): rec for rec in records}
        by_prompt: dict[tuple, list[tuple[float, str, dict, dict]]] = defaultdict(list)
        bad = 0
        for (k, pid, cid), rec in latest.items():
            found, digits = self._candidate(k, pid, cid), rec.get("scores")
            if found is None or not _valid_digits(digits):
                bad += 1
                continue
            by_prompt[(k, pid)].append((rubric_reward(digits), found[1], found[0], digits))
        rows, replay = [], []
        for (k, pid), scored in by_prompt.items():
            prompt = scored[0][2]
            mean = sum(s[0] for s in scored) / len(scored)
            if mean < self.threshold:
                worst = min(scored, key=lambda s: s[0])[3]
                dim = min(RUBRIC, key=lambda d: worst[d])
                replay.append({"record": prompt, "cluster": f"human:{dim}", "mean_reward": mean, "round": r})
            best, low = max(scored, key=lambda s: s[0]), min(scored, key=lambda s: s[0])
            if best[0] > low[0] and best[1] != low[1]:
                rows.append({"prompt_id": pid, "prompt": prompt["prompt"], "chosen": best[1], "rejected": low[1],
                             "source": "human"})
        return pa.Table.from_pylist(rows, schema=SHARDS["pairs"].schema), replay, bad


def _valid_digits(digits: object) -> bool:
    lo, hi = RUBRIC_RANGE
    return (isinstance(digits, dict) and set(digits) >= set(RUBRIC)
            and all(isinstance(digits[d], int) and lo <= digits[d] <= hi for d in RUBRIC))


def concat_pairs(*tables: pa.Table | None) -> pa.Table | None:
    """The rows of every given ``pairs`` table in order (None when there are none)."""
    parts = [t.select(SHARDS["pairs"].schema.names).cast(SHARDS["pairs"].schema) for t in tables
             if t is not None and t.num_rows]
    return pa.concat_tables(parts) if parts else None


def human_summaries(dialogs: pa.Table, edits: pa.Table | None, override: pa.Table | None) -> pa.Table | None:
    """The human summaries of this batch's dialogues: a studio edit, else a ``distill.summaries_override``
    row (both replace the distilled row of their dialog_id); None when no dialogue has one."""
    batch = set(dialogs.column("dialog_id").to_pylist())
    rows: dict[str, dict] = {}
    for table in (override, edits):  # later wins: the studio's edit over the file
        for row in ([] if table is None else table.to_pylist()):
            if row["dialog_id"] in batch:
                rows[row["dialog_id"]] = row
    return pa.Table.from_pylist(list(rows.values()), schema=SHARDS["summaries"].schema) if rows else None


def unused_pairs(human: pa.Table | None, to_reward_model: bool, to_dpo: bool) -> dict[str, int]:
    """``human_pairs_unused``: a person's pairs that nothing trains on this round (no reward model taking
    human pairs, no DPO), counted and logged rather than dropped silently."""
    n = 0 if human is None or to_reward_model or to_dpo else human.num_rows
    if n:
        log.warning("%d pair(s) a person chose train nothing this round: set reward_model.refit_every (with "
                    "'human' in reward_model.pair_sources) or learner.algo=dpo to learn from them", n)
    return {"human_pairs_unused": n} if n else {}


def scores_file_counts(human: pa.Table | None, candidates: pa.Table) -> dict[str, int]:
    """``data.scores``: how many of its rows name a candidate of this round (they decide its reward) and how
    many do not (another round's, or no candidate of this run: counted each round, never dropped silently)."""
    from ouro_ray.judges.scoring import human_rows

    if human is None:
        return {}
    matched = human_rows(human, candidates)
    n = 0 if matched is None else matched.num_rows
    return {"human_file_matched": n, "human_file_unmatched": human.num_rows - n}
