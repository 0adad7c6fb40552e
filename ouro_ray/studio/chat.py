"""Stage 1 in the studio: a person talks with the run's current policy; a saved dialogue joins the chat shard.

The policy (:class:`~ouro_ray.stages.dialogue.ChatPolicy`, the one ``ouro chat`` uses) loads on the first
message, once per server, and answers one message at a time (a lock: one model, one generation). A saved
dialogue is appended to ``RUN_DIR/chat/dialogs.jsonl`` with :func:`~ouro_ray.stages.dialogue.append_dialog`,
where the run's next round reads it, and a ``chats`` record (the human's time) to the studio log.
"""

from __future__ import annotations

import threading
from typing import Callable, Literal, Protocol

from pydantic import BaseModel, Field, StrictStr

from ouro_ray.stages.dialogue import append_dialog, new_dialog_id
from ouro_ray.studio.rundata import RunData, StudioError


class Replier(Protocol):
    """What answers a conversation: ``ChatPolicy``, or a stand-in in tests."""

    def reply(self, turns: list[dict], index: int) -> str: ...


class Turn(BaseModel):
    role: Literal["human", "assistant"]
    text: StrictStr


class ChatMessage(BaseModel):
    """The dialogue so far and the person's new message."""

    turns: list[Turn]
    message: StrictStr


class ChatSave(BaseModel):
    """A finished dialogue to append to the chat shard."""

    turns: list[Turn]
    seconds: float = Field(ge=0, allow_inf_nan=False, description="how long the dialogue took, measured by the page")


def load_policy(run: RunData) -> Replier:
    """The run's current policy with the run's sampling settings, as ``ouro chat RUN_DIR`` loads it."""
    from ouro_ray.models.resolve import ModelNotFoundError, resolve_model
    from ouro_ray.stages.dialogue import ChatPolicy, ChatUsageError

    cfg = run.config
    try:
        model_dir = resolve_model(run.path, key="RUN_DIR").model_dir
        return ChatPolicy(model_dir, cfg.rollout.sampling, cfg.seed, cfg.rollout.dtype)
    except (ModelNotFoundError, ChatUsageError) as exc:
        raise StudioError(503, f"the policy cannot be loaded: {exc}") from None


def check_turns(turns: list[Turn], *, finished: bool) -> list[dict]:
    """The turns as records; they must alternate human, assistant, … (and end with the policy's answer
    when ``finished``), each with text."""
    records = [{"role": t.role, "text": t.text} for t in turns]
    for i, turn in enumerate(records):
        expected = "human" if i % 2 == 0 else "assistant"
        if turn["role"] != expected:
            raise StudioError(422, f"turns[{i}].role = {turn['role']!r}: turns alternate human, assistant, starting "
                                   f"with human; expected {expected!r}")
        if not turn["text"].strip():
            raise StudioError(422, f"turns[{i}].text is empty; every turn needs text")
    if finished and (not records or records[-1]["role"] != "assistant"):
        raise StudioError(422, "nothing to save: a dialogue needs at least one message and the policy's answer; "
                               "fix: send a message first")
    return records


class ChatService:
    """The policy behind the chat page (loaded lazily, one generation at a time) and the saving of dialogues."""

    def __init__(self, run: RunData, policy: Replier | None = None,
                 load: Callable[[RunData], Replier] = load_policy):
        self.run = run
        self._policy = policy
        self._load = load
        self._lock = threading.Lock()
        self._replies = 0  # the seed of reply k is seed + k, as in one `ouro chat` session

    def reply(self, msg: ChatMessage) -> str:
        """The policy's answer to the turns so far plus the new message."""
        text = msg.message.strip()
        if not text:
            raise StudioError(422, "message is empty; fix: type what you want to say to the policy")
        turns = check_turns(msg.turns, finished=False)
        if turns and turns[-1]["role"] != "assistant":
            raise StudioError(422, "the last turn is the person's; wait for the policy's answer before the next message")
        with self._lock:
            if self._policy is None:
                self._policy = self._load(self.run)
            index = self._replies
            self._replies += 1
            return self._policy.reply([*turns, {"role": "human", "text": text}], index)

    def save(self, msg: ChatSave) -> dict:
        """Append the dialogue to the chat shard and its ``chats`` record; returns what the page reports."""
        turns = check_turns(msg.turns, finished=True)
        dialog_id = new_dialog_id()
        append_dialog({"dialog_id": dialog_id, "turns": turns}, self.run.chat_path)
        exchanges = len(turns) // 2
        self.run.log.append("chats", {"dialog_id": dialog_id, "exchanges": exchanges, "seconds": msg.seconds})
        next_round = int(self.run.state().get("completed_rounds", 0)) + 1
        return {"dialog_id": dialog_id, "exchanges": exchanges, "path": str(self.run.chat_path),
                "next_round": f"ouro run --resume {self.run.path} rounds={next_round}"}
