"""The studio's log: what people did in ``ouro studio``, one append-only JSONL file per kind of action.

``RUN_DIR/studio/<kind>.jsonl``, each line one action, appended durably by :func:`append_line` (a lock,
one write, fsync: two tabs lose nothing, a killed server at most the request in flight). Every record
carries ``at`` (UTC, ISO 8601) and ``seconds``: how long the person took, from the page showing the
item to the answer, so human minutes are measured from real use.

=========== =====================================================================================
kind        fields besides ``at`` and ``seconds``
=========== =====================================================================================
chats       ``dialog_id``, ``exchanges``: a dialogue saved to the chat shard (``chat/dialogs.jsonl``)
summaries   ``dialog_id``, ``round`` (null: a chat dialogue not distilled yet), ``base`` (the version
            the person edited), ``facts``, ``logic``, ``persona{voice, constraints}``
scores      ``round``, ``prompt_id``, ``candidate_id``, ``scores{helpful, honest, persona}`` (1..5)
pairs       ``round``, ``prompt_id``, ``chosen``, ``rejected`` (candidate ids of one prompt)
votes       ``left``, ``right`` (model names as shown), ``prompt_id``, ``candidate_id``, ``winner``
            (``left``, ``right`` or ``tie``)
=========== =====================================================================================

The next round of ``ouro run`` reads what it has not read yet (``state.json`` keeps, per kind, how
many records it consumed; records are only ever appended). A line that does not parse (a fragment a
killed writer left) is quarantined: skipped, counted, and never consumed twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ouro_ray.data.files import append_line, json_objects

log = logging.getLogger(__name__)

STUDIO_DIR = "studio"
KINDS = ("chats", "summaries", "scores", "pairs", "votes")
RUBRIC_RANGE = (1, 5)
"""A person's score per rubric dimension: a whole number from 1 (bad) to 5 (good)."""


@dataclass(frozen=True)
class StudioRecords:
    """One kind's valid records in file order, and how many lines were quarantined (did not parse)."""

    records: list[dict]
    quarantined: int


def summary_version(summary: dict[str, Any]) -> str:
    """A short hash of a summary's content (facts, logic, persona): the ``base`` an edit names, so an edit
    made on a page that no longer shows the current version is refused as stale."""
    content = {k: summary.get(k) for k in ("facts", "logic", "persona")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class StudioLog:
    """``RUN_DIR/studio``: append an action, read a kind back."""

    def __init__(self, run_path: Path | str):
        self.dir = Path(run_path) / STUDIO_DIR

    def path(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"studio record kind {kind!r} is unknown; kinds: {', '.join(KINDS)}")
        return self.dir / f"{kind}.jsonl"

    def append(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``at`` and append ``record`` (one JSON line); returns what was written."""
        if not isinstance(record.get("seconds"), (int, float)) or record["seconds"] < 0:
            raise ValueError(f"studio {kind} record: seconds = {record.get('seconds')!r}; it must be the "
                             "non-negative time the person took")
        stamped = {**record, "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        append_line(self.path(kind), json.dumps(stamped, ensure_ascii=False))
        return stamped

    def read(self, kind: str) -> StudioRecords:
        """The valid records of ``kind`` in order; lines that are not a JSON object are counted, not returned."""
        path = self.path(kind)
        if not path.is_file():
            return StudioRecords([], 0)
        records, bad = [], 0
        for n, record in json_objects(path):
            if record is None:
                bad += 1
                log.warning("%s:%d: not a JSON object (a fragment of an interrupted write?); quarantined", path, n)
                continue
            records.append(record)
        return StudioRecords(records, bad)

    def latest_summaries(self) -> dict[str, dict]:
        """The newest edit of each dialogue's summary, by dialog_id."""
        return {r["dialog_id"]: r for r in self.read("summaries").records}

    def seconds(self, kind: str) -> list[float]:
        """The time each recorded action of ``kind`` took."""
        return [float(r["seconds"]) for r in self.read(kind).records]
