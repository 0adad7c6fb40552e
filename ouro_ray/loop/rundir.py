"""The run directory of ``ouro run``: config, per-round shards, metrics, the current policy, resume state.

    RUN_DIR/run.json               what wrote it (marks the directory as a run: `ouro chat RUN_DIR`)
    RUN_DIR/config.yaml            the resolved config; `--resume` reads it back
    RUN_DIR/state.json             rounds finished, the policy version after them, the replay pool
    RUN_DIR/heldout.parquet        the held-out prompts every evaluation uses
    RUN_DIR/round_NNN/*.parquet    that round's shards; *.jsonl beside the ones people read
    RUN_DIR/review.jsonl           candidates queued for humans (all rounds)
    RUN_DIR/metrics.json           {"rounds": [...]} round 0 = before any update
    RUN_DIR/policy/                the current policy as a Hugging Face directory
    RUN_DIR/train/                 the learner's checkpoints (Ray Train storage)
    RUN_DIR/chat/dialogs.jsonl     dialogues `ouro chat RUN_DIR` appended (stage 1 for a human)

Every file is written atomically (temporary name, then rename), and ``state.json`` is written
last in a round, so an interrupted round leaves the previous state intact and is rerun on resume.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from ouro_ray.data import write_shard
from ouro_ray.data.files import atomic_path, write_text_atomic
from ouro_ray.models.resolve import RUN_MARKER

HUMAN_READABLE = frozenset({"dialogs", "summaries", "labyrinth", "prompts", "scores", "pairs", "replay"})
"""Shards also written as JSONL: the ones people open to read or edit."""


def is_run_dir(path: Path | str) -> bool:
    return (Path(path) / RUN_MARKER).is_file()


class RunDir:
    """One run's directory; creates it, or opens it for ``--resume``."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser().absolute()

    # --- creation and resume -------------------------------------------------------------------
    def create(self, config: dict[str, Any]) -> "RunDir":
        if self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(f"run directory {self.path} exists and is not empty; fix: pick a new --out, or "
                                  f"continue it with `ouro run --resume {self.path}`")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        self.write_json(RUN_MARKER, {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "tool": "ouro run"})
        return self

    def check_resumable(self) -> None:
        if not is_run_dir(self.path) or not (self.path / "config.yaml").is_file():
            raise FileNotFoundError(f"{self.path} is not an `ouro run` directory (no {RUN_MARKER} or config.yaml); "
                                    "fix: pass the --out directory of an earlier run")

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        path = self.path / "state.json"
        if not path.is_file():
            return {"completed_rounds": 0, "policy_version": 0, "pool": [], "chat_seen": []}
        return json.loads(path.read_text())

    def save_state(self, state: dict[str, Any]) -> None:
        self.write_json("state.json", state)

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")
        return path

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path / name
        return json.loads(path.read_text()) if path.is_file() else default

    # --- shards ------------------------------------------------------------------------------
    def round_dir(self, round_index: int) -> Path:
        path = self.path / f"round_{round_index:03d}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, round_index: int, name: str, table: pa.Table, kind: str) -> Path:
        """``round_NNN/<name>.parquet`` (+ ``.jsonl`` for the shards people read), validated as ``kind``."""
        out = self.round_dir(round_index)
        path = write_shard(table, out / f"{name}.parquet", kind)
        if kind in HUMAN_READABLE:
            write_shard(table, out / f"{name}.jsonl", kind)
        return path

    def write_table(self, round_index: int, name: str, table: pa.Table) -> Path:
        """A table outside the shard kinds (e.g. the per-candidate rewards), Parquet only."""
        import pyarrow.parquet as pq

        path = self.round_dir(round_index) / f"{name}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    def append_jsonl(self, name: str, records: list[dict]) -> Path:
        path = self.path / name
        with path.open("a") as f:
            for record in records:
                f.write(json.dumps(record, default=_json_default) + "\n")
        return path

    def drop_round_rows(self, name: str, first_round: int) -> None:
        """Forget rows of rounds >= ``first_round`` in a JSONL file (an interrupted round is rerun on resume)."""
        path = self.path / name
        if path.is_file():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["round"] < first_round]
            write_text_atomic(path, "".join(line + "\n" for line in kept))

    # --- policy ------------------------------------------------------------------------------
    def export_policy(self, checkpoint_policy: Path) -> Path:
        """Copy the learner checkpoint's HF policy directory to ``RUN_DIR/policy`` (replacing it whole)."""
        target = self.path / "policy"
        staging = self.path / ".policy.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint_policy, staging)
        old = self.path / ".policy.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
        return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
