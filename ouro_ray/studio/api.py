"""The studio's JSON API: what the pages' script sends. Every write is checked first (a refusal writes
nothing) and appended to the studio log (:class:`~ouro_ray.data.studio.StudioLog`) or the chat shard."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ouro_ray.data.studio import summary_version
from ouro_ray.studio.arena import MatchRequest, Vote
from ouro_ray.studio.chat import ChatMessage, ChatSave
from ouro_ray.studio.edits import PairChoice, ScoreLabel, SummaryEdit, check_pair, check_scores, check_summary_edit
from ouro_ray.studio.state import Studio, studio

router = APIRouter(prefix="/api")


@router.post("/chat/reply")
def chat_reply(msg: ChatMessage, s: Studio = Depends(studio)) -> dict:
    """The policy's answer to the dialogue so far plus the new message (nothing is written)."""
    return {"reply": s.chat.reply(msg)}


@router.post("/chat/save")
def chat_save(msg: ChatSave, s: Studio = Depends(studio)) -> dict:
    """Append the dialogue to RUN_DIR/chat/dialogs.jsonl (the next round reads it) and a ``chats`` record."""
    return s.chat.save(msg)


@router.post("/summaries")
def save_summary(edit: SummaryEdit, s: Studio = Depends(studio)) -> dict:
    """A person's version of a summary; refused when the page showed an older version than the current one."""
    with s.edit_lock:  # the stale check and the append as one step: two tabs cannot both edit the same version
        record = s.run.log.append("summaries", check_summary_edit(s.run, edit))
    return {"record": record, "base": summary_version(record)}


@router.post("/scores")
def save_scores(label: ScoreLabel, s: Studio = Depends(studio)) -> dict:
    """A person's 1-5 scores (helpful, honest, persona) of a review item."""
    return {"record": s.run.log.append("scores", check_scores(s.run, label))}


@router.post("/pairs")
def save_pair(pair: PairChoice, s: Studio = Depends(studio)) -> dict:
    """A person's choice between two candidates of a review item's prompt."""
    return {"record": s.run.log.append("pairs", check_pair(s.run, pair))}


@router.post("/arena/match")
def arena_match(req: MatchRequest, s: Studio = Depends(studio)) -> dict:
    """A blind match between models a and b: the prompt and the two answers, sides at random."""
    return s.arena.draw(req)


@router.post("/arena/vote")
def arena_vote(vote: Vote, s: Studio = Depends(studio)) -> dict:
    """A vote on an issued match (once); returns which model was which and the ELO table."""
    record = s.run.log.append("votes", s.arena.vote(vote))
    return {"record": record, "elo": s.arena.table()}


@router.get("/arena/elo")
def arena_elo(s: Studio = Depends(studio)) -> dict:
    """The ELO table over every vote so far."""
    return s.arena.table()
