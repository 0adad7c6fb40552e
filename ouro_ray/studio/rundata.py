"""The run directory as the studio reads it: rounds, shards, the review queue, the chat shard, the edits.

Read on every request, because a round may finish while the studio is open; Parquet and JSONL files are
cached by (modification time, size), so an unchanged file is parsed once. Rows returned from the cache
are shared: callers copy before changing them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ouro_ray.data.files import json_objects
from ouro_ray.data.studio import StudioLog
from ouro_ray.loop.rundir import is_run_dir
from ouro_ray.models.resolve import RUN_MARKER
from ouro_ray.stages.dialogue import RUN_CHAT_SHARD

ROUND_DIR = re.compile(r"round_(\d{3,})")


class StudioError(Exception):
    """A request the studio refuses: the HTTP status and the message the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class NotARunDirectory(ValueError):
    """A path given as a run directory that no ``ouro run`` wrote."""


def check_run_dir(path: Path | str, what: str = "RUN_DIR") -> Path:
    """``path`` as an absolute path, or :class:`NotARunDirectory` naming it and the fix."""
    resolved = Path(path).expanduser().absolute()
    if not is_run_dir(resolved) or not (resolved / "config.yaml").is_file():
        raise NotARunDirectory(f"{what} {path}: not an `ouro run` directory (no {RUN_MARKER} or config.yaml in "
                               f"{resolved}); fix: pass the --out directory of an `ouro run`")
    return resolved


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=256)
def _parquet(path: str, stamp: tuple[int, int], columns: tuple[str, ...] | None) -> tuple[dict, ...]:
    return tuple(pq.read_table(path, columns=list(columns) if columns else None).to_pylist())


@functools.lru_cache(maxsize=32)
def _jsonl(path: str, stamp: tuple[int, int]) -> tuple[dict, ...]:
    return tuple(row for _, row in json_objects(path) if row is not None)  # a fragment of a torn write: no item


def parquet_rows(path: Path, columns: tuple[str, ...] | None = None) -> tuple[dict, ...]:
    """The rows of a Parquet file (empty when it does not exist)."""
    stamp = _stamp(path)
    return () if stamp is None else _parquet(str(path), stamp, columns)


def jsonl_rows(path: Path) -> tuple[dict, ...]:
    """The JSON-object lines of a JSONL file (empty when it does not exist); other lines are skipped."""
    stamp = _stamp(path)
    return () if stamp is None else _jsonl(str(path), stamp)


class RunData:
    """One ``ouro run`` directory, read for the studio's pages."""

    def __init__(self, path: Path | str):
        self.path = check_run_dir(path)
        self.name = self.path.name
        self.log = StudioLog(self.path)
        self._config = None
        self._drafts: tuple[tuple, dict[str, dict]] = ((), {})

    @property
    def config(self):
        """The run's resolved config (``config.yaml``), loaded once."""
        if self._config is None:
            from ouro_ray.config import load_config

            self._config = load_config(self.path / "config.yaml")
        return self._config

    @property
    def chat_path(self) -> Path:
        return self.path / RUN_CHAT_SHARD

    def round_dir(self, r: int) -> Path:
        return self.path / f"round_{r:03d}"

    def rounds(self, having: str) -> list[int]:
        """The rounds whose directory holds ``having`` (a file name), ascending."""
        found = [int(m.group(1)) for p in self.path.iterdir() if (m := ROUND_DIR.fullmatch(p.name))]
        return sorted(r for r in found if (self.round_dir(r) / having).is_file())

    def metrics(self) -> list[dict]:
        path = self.path / "metrics.json"
        return json.loads(path.read_text())["rounds"] if path.is_file() else []

    def state(self) -> dict:
        path = self.path / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    # ---------------------------------------------------------------- stage 5: the review queue
    def review_items(self) -> tuple[dict, ...]:
        return jsonl_rows(self.path / "review.jsonl")

    def review_item(self, r: int, prompt_id: str, candidate_id: str) -> dict | None:
        return next((i for i in self.review_items() if (i["round"], i["prompt_id"], i["candidate_id"])
                     == (r, prompt_id, candidate_id)), None)

    def candidates(self, r: int, prompt_id: str) -> dict[str, str]:
        """Round r's candidates of one prompt: candidate_id → text, in file order."""
        rows = parquet_rows(self.round_dir(r) / "candidates.parquet", ("prompt_id", "candidate_id", "text"))
        return {row["candidate_id"]: row["text"] for row in rows if row["prompt_id"] == prompt_id}

    def target(self, r: int, prompt_id: str) -> dict | None:
        """What an answer to round r's prompt must preserve (labyrinth ``target``; a prompts shard's label
        as a behavior), or None when the round's prompts are not on disk."""
        for row in parquet_rows(self.round_dir(r) / "labyrinth.parquet", ("prompt_id", "target")):
            if row["prompt_id"] == prompt_id:
                return row["target"]
        for row in parquet_rows(self.round_dir(r) / "prompts.parquet", ("prompt_id", "label")):
            if row["prompt_id"] == prompt_id:
                return {"behavior": "answer" if row["label"] == "safe" else "refuse"}
        return None

    # ---------------------------------------------------------------- stages 1-2: dialogues and summaries
    def round_dialogs(self, r: int) -> dict[str, list[dict]]:
        return {row["dialog_id"]: row["turns"] for row in parquet_rows(self.round_dir(r) / "dialogs.parquet")}

    def round_summaries(self, r: int) -> dict[str, dict]:
        return {row["dialog_id"]: row for row in parquet_rows(self.round_dir(r) / "summaries.parquet")}

    def chat_dialogs(self) -> list[dict]:
        """The valid dialogues of the chat shard (a fragment a killed writer left is skipped)."""
        from ouro_ray.data import scan_shard

        if not self.chat_path.is_file():
            return []
        table, _bad = scan_shard(self.chat_path, "dialogs")
        return table.to_pylist()

    def pending_dialogs(self) -> list[dict]:
        """Chat dialogues no round has read yet: the next round's."""
        seen = set(self.state().get("chat_seen", []))
        for r in self.rounds("dialogs.parquet"):
            seen |= set(self.round_dialogs(r))
        return [d for d in self.chat_dialogs() if d["dialog_id"] not in seen]

    def pending_drafts(self) -> dict[str, dict]:
        """A summary by rules (no AI) of each pending chat dialogue, by dialog_id (made again only when the chat
        shard, the state or the rounds change)."""
        key = (_stamp(self.chat_path), _stamp(self.path / "state.json"), tuple(self.rounds("dialogs.parquet")))
        if key != self._drafts[0]:
            self._drafts = (key, self._distill_pending())
        return self._drafts[1]

    def _distill_pending(self) -> dict[str, dict]:
        from ouro_ray.data import to_table
        from ouro_ray.stages.distill import distill

        pending = self.pending_dialogs()
        if not pending:
            return {}
        cfg = dataclasses.replace(self.config.distill, use_ai=False)
        rows = distill(to_table(pending, "dialogs"), cfg).summaries.to_pylist()
        return {row["dialog_id"]: row for row in rows}

    def original_summary(self, r: int | None, dialog_id: str) -> dict | None:
        """The summary the loop wrote for round r (None: the rule draft of a pending chat dialogue)."""
        source = self.pending_drafts() if r is None else self.round_summaries(r)
        return source.get(dialog_id)

    def current_summary(self, r: int | None, dialog_id: str) -> tuple[dict | None, dict | None]:
        """(the summary a page shows, the person's edit it comes from or None); (None, None): no such dialogue."""
        original = self.original_summary(r, dialog_id)
        if original is None:
            return None, None
        edit = self.log.latest_summaries().get(dialog_id)
        return (summary_of(edit), edit) if edit is not None else (summary_of(original), None)


def summary_of(row: dict[str, Any]) -> dict[str, Any]:
    """The content of a summary (or of an edit record): facts, logic, persona; copied."""
    persona = row.get("persona") or {}
    return {"facts": list(row.get("facts") or []), "logic": list(row.get("logic") or []),
            "persona": {"voice": persona.get("voice") or "", "constraints": list(persona.get("constraints") or [])}}
