"""What a person sends the studio, checked before anything is written.

The request bodies are pydantic models (FastAPI refuses a wrong type or a missing field with a 422);
the rules that need the run directory (does this review item exist, is this edit stale) are here, each
raising :class:`~ouro_ray.studio.rundata.StudioError` with a message that names the field, the value and
the fix. A check that fails writes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictInt, StrictStr

from ouro_ray.data.studio import RUBRIC_RANGE, summary_version
from ouro_ray.studio.rundata import RunData, StudioError

DIMENSIONS = ("helpful", "honest", "persona")
"""The rubric dimensions a person scores in the review queue."""



def _seconds_field():
    """The ``seconds`` field of every write: how long the person took, measured by the page."""
    return Field(ge=0, allow_inf_nan=False, description="how long the person took, measured by the page")


class Persona(BaseModel):
    voice: StrictStr
    constraints: list[StrictStr]


class SummaryEdit(BaseModel):
    """A person's version of one dialogue's summary."""

    dialog_id: StrictStr
    round: StrictInt | None
    base: StrictStr = Field(description="summary_version of the version the page showed")
    facts: list[StrictStr]
    logic: list[StrictStr]
    persona: Persona
    seconds: float = _seconds_field()


class ScoreLabel(BaseModel):
    """A person's 1-5 scores of one review item."""

    round: StrictInt
    prompt_id: StrictStr
    candidate_id: StrictStr
    scores: dict[str, Any]
    seconds: float = _seconds_field()


class PairChoice(BaseModel):
    """A person's choice between two candidates of one prompt."""

    round: StrictInt
    prompt_id: StrictStr
    chosen: StrictStr
    rejected: StrictStr
    seconds: float = _seconds_field()


def _clean_items(items: list[str], field: str) -> list[str]:
    """The items stripped; an empty one is refused (a blank line is a mistake, not a fact)."""
    cleaned = [item.strip() for item in items]
    for i, item in enumerate(cleaned):
        if not item:
            raise StudioError(422, f"{field}[{i}] is empty; fix: write it or delete it")
    return cleaned


def check_summary_edit(run: RunData, edit: SummaryEdit) -> dict:
    """The ``summaries`` record for ``edit``, or StudioError: 404 unknown dialogue, 409 stale, 422 bad content."""
    current, _ = run.current_summary(edit.round, edit.dialog_id)
    if current is None:
        where = "among the pending chat dialogues" if edit.round is None else f"in round {edit.round}'s summaries"
        raise StudioError(404, f"dialog_id {edit.dialog_id!r}: no such dialogue {where}; fix: reload the page")
    if edit.base != summary_version(current):
        raise StudioError(409, f"the summary of {edit.dialog_id} changed in another tab since you opened it; reload "
                               "the page and make your edit again")
    content = {"facts": _clean_items(edit.facts, "facts"), "logic": _clean_items(edit.logic, "logic"),
               "persona": {"voice": edit.persona.voice.strip(),
                           "constraints": _clean_items(edit.persona.constraints, "persona.constraints")}}
    if not content["facts"]:
        raise StudioError(422, f"the summary of {edit.dialog_id} has no facts; a summary needs at least one fact an "
                               "answer must keep; fix: add one (or leave the summary as it was)")
    if summary_version(content) == summary_version(current):
        raise StudioError(422, f"the summary of {edit.dialog_id} is the same as the current version; nothing to "
                               "save: change a fact, a logic step or the persona first")
    _check_schema(edit.dialog_id, content)
    return {"dialog_id": edit.dialog_id, "round": edit.round, "base": edit.base, **content, "seconds": edit.seconds}


def _check_schema(dialog_id: str, content: dict) -> None:
    from ouro_ray.data import to_table

    try:
        to_table([{"dialog_id": dialog_id, **content}], "summaries")  # the loop reads it as a summaries row
    except ValueError as exc:
        raise StudioError(422, f"the edited summary is not a valid summaries row: {exc}") from None


def check_scores(run: RunData, label: ScoreLabel) -> dict:
    """The ``scores`` record for ``label``, or StudioError (404 unknown item, 422 a bad score)."""
    if run.review_item(label.round, label.prompt_id, label.candidate_id) is None:
        raise StudioError(404, f"no review item (round {label.round}, prompt_id {label.prompt_id!r}, candidate_id "
                               f"{label.candidate_id!r}) in review.jsonl; fix: reload the review queue")
    low, high = RUBRIC_RANGE
    missing = [d for d in DIMENSIONS if d not in label.scores]
    if missing:
        raise StudioError(422, f"scores.{missing[0]} is missing; every item needs {', '.join(DIMENSIONS)} "
                               f"({low}-{high}); fix: set it")
    unknown = sorted(set(label.scores) - set(DIMENSIONS))
    if unknown:
        raise StudioError(422, f"scores.{unknown[0]}: not a rubric dimension; the dimensions are "
                               f"{', '.join(DIMENSIONS)}")
    for dim in DIMENSIONS:
        value = label.scores[dim]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise StudioError(422, f"scores.{dim} = {value!r}: a score is a whole number from {low} (bad) to "
                                   f"{high} (good)")
    scores = {d: label.scores[d] for d in DIMENSIONS}
    return {"round": label.round, "prompt_id": label.prompt_id, "candidate_id": label.candidate_id,
            "scores": scores, "seconds": label.seconds}


def check_pair(run: RunData, pair: PairChoice) -> dict:
    """The ``pairs`` record for ``pair``, or StudioError (404 unknown prompt, 422 bad candidate ids)."""
    if pair.chosen == pair.rejected:
        raise StudioError(422, f"chosen = rejected = {pair.chosen!r}: a pair needs two different candidates")
    if not any((i["round"], i["prompt_id"]) == (pair.round, pair.prompt_id) for i in run.review_items()):
        raise StudioError(404, f"no review item for prompt_id {pair.prompt_id!r} in round {pair.round}; fix: reload "
                               "the review queue")
    candidates = run.candidates(pair.round, pair.prompt_id)
    for field, cid in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        if cid not in candidates:
            known = ", ".join(candidates) or "none on disk"
            raise StudioError(422, f"{field} = {cid!r}: not a candidate of prompt {pair.prompt_id} in round "
                                   f"{pair.round} (its candidates: {known})")
    return {"round": pair.round, "prompt_id": pair.prompt_id, "chosen": pair.chosen, "rejected": pair.rejected,
            "seconds": pair.seconds}


def describe_validation(errors: list[dict]) -> str:
    """FastAPI's request-validation errors as one sentence per problem: field, value, rule."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "the request body"
        shown = f" = {_short(err['input'])}" if err.get("type") != "missing" and "input" in err else ""
        parts.append(f"{loc}{shown}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
