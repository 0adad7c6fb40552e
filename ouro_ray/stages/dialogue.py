"""Stage 1, Dialogue: a human talks with the current policy; each dialogue joins a dialogs shard.

The library behind ``ouro chat`` (:mod:`ouro_ray.cli.chat`). Glue around the loop's own pieces: the policy
loads with :func:`~ouro_ray.models.load.load_causal_lm`,
answers through :class:`~ouro_ray.rollout.transformers_backend.TransformersBackend` with the config's
``rollout.sampling`` (one candidate, seed ``seed + reply index``), and every dialogue is validated
against the ``dialogs`` schema before it is appended, so a bad record is never written.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

RUN_CHAT_SHARD = Path("chat") / "dialogs.jsonl"
"""Where a run's loop reads new human dialogues each round."""

HELP = """commands:
  (empty line) or /end   save this dialogue and start a new one
  /quit or Ctrl-D        save this dialogue and exit
  /help                  this list"""


class ChatUsageError(Exception):
    """The model or the output cannot be resolved from the arguments (exit 2)."""


# ---------------------------------------------------------------- where the policy and the dialogues are


def resolve_out(out: str | None, run_dir: Path | None) -> Path:
    """The dialogs shard to append to: ``--out``, else the run's chat shard; checked before any talk."""
    from ouro_ray.data import read_shard
    from ouro_ray.data.shards import shard_format

    if out is None and run_dir is None:
        raise ChatUsageError("--out is required unless --model is a run directory; fix: pass --out DIALOGS.jsonl")
    path = Path(out) if out is not None else run_dir / RUN_CHAT_SHARD
    try:
        shard_format(path)
    except ValueError as exc:
        raise ChatUsageError(f"--out {exc}") from None
    if path.exists():
        read_shard(path, "dialogs")  # a bad existing shard fails now (exit 1), not after a conversation
    return path


# ---------------------------------------------------------------- the policy's side


def encode_conversation(tokenizer, turns: list[dict]) -> list[int]:
    """The conversation with the assistant's turn opened, as ``encode_prompts`` renders one turn."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user" if t["role"] == "human" else "assistant", "content": t["text"]} for t in turns]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])  # the template carries bos, roles
    return list(tokenizer("\n".join(t["text"] for t in turns))["input_ids"])


class ChatPolicy:
    """The policy answering a conversation: one sampled candidate per human turn."""

    def __init__(self, model_dir: Path, sampling, seed: int, dtype: str = "float32"):
        import dataclasses

        from ouro_ray.models.device import pick_device
        from ouro_ray.models.load import load_causal_lm
        from ouro_ray.rollout.transformers_backend import TransformersBackend

        model, tokenizer = load_causal_lm(model_dir, dtype=dtype, device=pick_device())
        self.backend = TransformersBackend(model, tokenizer)
        self.sampling = dataclasses.replace(sampling, n=1)
        self.seed = seed
        self.dropped_tokens = 0  # tokens of the last reply's conversation that did not fit the context
        max_positions = getattr(model.config, "max_position_embeddings", None)
        self.context = None if max_positions is None else max_positions - sampling.max_new_tokens
        if self.context is not None and self.context < 1:
            raise ChatUsageError(f"rollout.sampling.max_new_tokens = {sampling.max_new_tokens}: leaves no room for the "
                                 f"conversation in the model's {max_positions} positions; fix: lower it")

    def reply(self, turns: list[dict], index: int) -> str:
        """The policy's answer to ``turns`` (ending with a human turn); the oldest tokens go first when too long
        (counted in ``dropped_tokens`` and logged)."""
        ids = encode_conversation(self.backend.tokenizer, turns)
        if self.context is not None and len(ids) > self.context:
            self.dropped_tokens = len(ids) - self.context
            log.warning("the conversation is %d tokens, the model takes %d before its answer: the oldest %d were left "
                        "out of this reply's context", len(ids), self.context, self.dropped_tokens)
            ids = ids[-self.context:]
        return self.backend.generate([ids], self.sampling, seed=self.seed + index)[0].text


# ---------------------------------------------------------------- the shard


def new_dialog_id() -> str:
    return f"chat-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def append_dialog(record: dict, path: Path) -> None:
    """Validate one dialogue, then append it: a JSON line, or Parquet rewritten atomically."""
    import pyarrow as pa

    from ouro_ray.data import read_shard, table_to_records, to_table, write_shard
    from ouro_ray.data.files import append_line
    from ouro_ray.data.shards import shard_format

    table = to_table([record], "dialogs")  # raises before anything is written
    if shard_format(path) == "parquet":
        old = read_shard(path, "dialogs").table if path.exists() else None
        write_shard(table if old is None else pa.concat_tables([old, table]), path, "dialogs")
        return
    # locked, one write, fsync (ouro chat and studio tabs at once lose nothing); a file without a final
    # newline (hand-edited, or a killed writer's fragment) gets one first, so no two records glue together
    append_line(path, json.dumps(table_to_records(table)[0], ensure_ascii=False))


# ---------------------------------------------------------------- the conversation


def _save(turns: list[dict], out: Path) -> None:
    if not turns:
        return
    dialog_id = new_dialog_id()
    append_dialog({"dialog_id": dialog_id, "turns": turns}, out)
    print(f"saved {dialog_id} ({len(turns) // 2} exchanges) -> {out}", file=sys.stderr, flush=True)


def chat(reply: Callable[[list[dict], int], str], out: Path, read_line: Callable[[], str | None]) -> None:
    """Talk until /quit or end of input; each dialogue with at least one exchange is appended to ``out``."""
    turns: list[dict] = []
    n_replies = 0
    try:
        while (line := read_line()) is not None and (text := line.strip()) != "/quit":
            if text in ("", "/end"):
                _save(turns, out)
                turns = []
            elif text == "/help":
                print(HELP, flush=True)
            elif re.fullmatch(r"/\w+", text):
                print(f"unknown command {text}; /help lists the commands", file=sys.stderr, flush=True)
            else:
                human = {"role": "human", "text": text}
                answer = reply([*turns, human], n_replies)
                n_replies += 1
                turns += [human, {"role": "assistant", "text": answer}]
                print(f"policy> {answer}", flush=True)
    finally:  # Ctrl-C or an error while the policy answers still keeps the exchanges so far
        _save(turns, out)


def stdin_reader(interactive: bool) -> Callable[[], str | None]:
    """One line of stdin per call (None at end of input or Ctrl-C), with a ``you>`` prompt on a terminal."""
    def read_line() -> str | None:
        try:
            return input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print()
            return None
    return read_line
