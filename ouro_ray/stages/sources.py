"""Stage 1's inputs and the held-out prompts: dialogue files, `ouro chat` sessions, the tiny world.

Held-out prompts never train: with ``data.dialogs`` whole dialogues are set aside
(``evaluation.held_out_share``); with synthetic dialogues the held-out ones come from their own
seeded stream; with ``data.prompts`` (fixed prompts, the BCR set-up) they are those prompts unless
``evaluation.prompts`` names a file. Everything is seeded, so a resumed run sees the same inputs.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pyarrow as pa

from ouro_ray.config import OuroConfig
from ouro_ray.data import read_shard, to_table
from ouro_ray.seeding import derive_seed
from ouro_ray.stages.distill import distill
from ouro_ray.stages.labyrinth import labyrinth, rephrasings

CHAT_DIALOGS = Path("chat") / "dialogs.jsonl"


def read_prompts(path: str) -> pa.Table:
    """A prompts shard ({prompt_id, prompt, label}) or a labyrinth shard (rows with a ``target``)."""
    return read_shard(path, "labyrinth" if _has_target(Path(path)) else "prompts").table


def _has_target(path: Path) -> bool:
    import json

    import pyarrow.parquet as pq

    from ouro_ray.data.shards import shard_format

    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} does not exist; fix: check data.prompts / evaluation.prompts")
    if shard_format(path) == "parquet":
        return "target" in pq.read_schema(path).names
    with path.open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "{}")
    try:
        return "target" in json.loads(first)
    except json.JSONDecodeError:
        return False  # read_shard reports the bad line with its number


def prompt_kind(table: pa.Table) -> str:
    return "labyrinth" if "target" in table.column_names else "prompts"


def rephrase_prompts(table: pa.Table, k: int, seed: int) -> pa.Table:
    """The fixed prompts, then ``k`` paraphrases of each (``data.rephrase``): the labyrinth's rewordings and pronoun
    swap, each row's drawn from ``(seed, prompt_id)``; ids ``{prompt_id}-p{j}``, label or target kept (a labyrinth
    row's copy is kind ``rephrase``, in no contrastive group). Raises ValueError naming an id that already exists."""
    if k == 0:
        return table
    ids = set(table.column("prompt_id").to_pylist())
    extra = []
    for row in table.to_pylist():
        rng = random.Random(derive_seed(seed, "rephrase", row["prompt_id"]))
        for j, text in enumerate(rephrasings(row["prompt"], rng, k), 1):
            pid = f"{row['prompt_id']}-p{j}"
            if pid in ids:
                raise ValueError(f"data.rephrase: paraphrase id {pid!r} is already a prompt_id of data.prompts; fix: "
                                 "rename that prompt, or set data.rephrase=0")
            extra.append({**row, "prompt_id": pid, "prompt": text}
                         | ({"kind": "rephrase", "group_id": None} if "target" in row else {}))
    return pa.concat_tables([table, pa.Table.from_pylist(extra, schema=table.schema)])


def synthetic_dialogs(cfg: OuroConfig, n: int, *stream: object) -> pa.Table:
    """``n`` tiny-world dialogues of a good assistant: the facts stated, harmful requests refused.

    The assistant turns matter because stage 2 distils facts from them; the policy's own behaviour
    is what the loop measures and trains, not what these dialogues show.
    """
    from ouro_ray.config.world import CorpusConfig
    from ouro_ray.world.corpus import generate_corpus

    corpus_cfg = CorpusConfig(n_dialogs=max(n, 10), max_exchanges=cfg.world.corpus.max_exchanges,
                              concise_rate=1.0, unsafe_rate=cfg.data.synthetic_unsafe_rate, refusal_rate=1.0,
                              over_refusal_rate=0.0)
    corpus = generate_corpus(corpus_cfg, derive_seed(cfg.seed, "dialogs", *stream))
    return to_table(corpus.dialogs[:n], "dialogs")


class DialogSource:
    """The dialogues of each round: files (training share), chat sessions, synthetic ones."""

    def __init__(self, cfg: OuroConfig, run_path: Path):
        self.cfg, self.run_path = cfg, run_path
        self.chat_quarantined = 0  # bad lines in the chat shard at the last read (quarantined, counted)
        self.files = self._read_files()
        self.train_ids, self.held_ids = self._split()

    def _read_files(self) -> pa.Table | None:
        tables = [read_shard(p, "dialogs").table for p in self.cfg.data.dialogs]
        if not tables:
            return None
        table = pa.concat_tables(tables)
        ids = table.column("dialog_id").to_pylist()
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"data.dialogs: dialog_id {dup} appears more than once across {list(self.cfg.data.dialogs)}; "
                             "fix: give every dialogue a unique dialog_id")
        return table

    def _split(self) -> tuple[list[str], set[str]]:
        if self.files is None:
            return [], set()
        ids = self.files.column("dialog_id").to_pylist()
        ranked = sorted(ids, key=lambda d: (derive_seed(self.cfg.seed, "held-out-dialogs", d), d))
        held = set(ranked[:round(self.cfg.evaluation.held_out_share * len(ids))])
        return [d for d in ids if d not in held], held

    def _take(self, ids: list[str] | set[str]) -> pa.Table:
        wanted = set(ids)
        mask = [d in wanted for d in self.files.column("dialog_id").to_pylist()]
        return self.files.filter(pa.array(mask, pa.bool_()))

    def round_dialogs(self, round_index: int, chat_seen: set[str]) -> tuple[pa.Table, list[str]]:
        """``(dialogs, new chat dialog ids)`` for one round."""
        parts = []
        if self.files is not None and self.train_ids:
            k = self.cfg.data.dialogs_per_round or len(self.train_ids)
            start = (round_index * k) % len(self.train_ids)
            window = (self.train_ids * 2)[start:start + min(k, len(self.train_ids))]
            parts.append(self._take(window))
        chat_ids: list[str] = []
        chat_path = self.run_path / CHAT_DIALOGS
        if self.cfg.data.chat and chat_path.is_file():
            read = read_shard(chat_path, "dialogs", quarantine=self.run_path / "chat" / "quarantine.jsonl")
            chat, self.chat_quarantined = read.table, read.n_bad  # a killed writer's fragment: counted, not fatal
            fresh = [d not in chat_seen for d in chat.column("dialog_id").to_pylist()]
            chat = chat.filter(pa.array(fresh, pa.bool_()))
            chat_ids = chat.column("dialog_id").to_pylist()
            parts.append(chat)
        if self.cfg.data.synthetic_dialogs:
            parts.append(synthetic_dialogs(self.cfg, self.cfg.data.synthetic_dialogs, "round", round_index))
        if not parts or sum(p.num_rows for p in parts) == 0:
            return to_table([], "dialogs"), chat_ids
        return pa.concat_tables([p.select(parts[0].column_names).cast(parts[0].schema) for p in parts]), chat_ids

    def held_out_dialogs(self) -> pa.Table | None:
        if self.files is not None and self.held_ids:
            return self._take(self.held_ids)
        if self.cfg.data.synthetic_dialogs:
            return synthetic_dialogs(self.cfg, self.cfg.evaluation.held_out_dialogs, "held-out")
        return None


def sample_rows(table: pa.Table, n: int, seed: int) -> pa.Table:
    """A seeded sample of ``n`` rows in their original order (the table itself when n covers it)."""
    if n <= 0 or table.num_rows <= n:
        return table
    keep = sorted(random.Random(seed).sample(range(table.num_rows), n))
    return table.take(pa.array(keep))


def held_out_prompts(cfg: OuroConfig, source: DialogSource | None) -> pa.Table:
    """The held-out prompt set every evaluation of the run uses (at most ``evaluation.size``)."""
    seed = derive_seed(cfg.seed, "held-out-prompts")
    if cfg.evaluation.prompts:
        return sample_rows(read_prompts(cfg.evaluation.prompts), cfg.evaluation.size, seed)
    if cfg.data.prompts:
        return sample_rows(read_prompts(cfg.data.prompts), cfg.evaluation.size, seed)
    dialogs = source.held_out_dialogs() if source is not None else None
    if dialogs is None or dialogs.num_rows == 0:
        raise ValueError("no held-out prompts: data.dialogs is empty after the split and no synthetic dialogues "
                         "are configured; fix: set evaluation.prompts, raise evaluation.held_out_share, or add "
                         "data.dialogs")
    summaries = distill(dialogs, dataclasses.replace(cfg.distill, use_ai=False)).summaries
    return sample_rows(labyrinth(summaries, dialogs, cfg.labyrinth, derive_seed(cfg.seed, "held-out")),
                       cfg.evaluation.size, seed)
