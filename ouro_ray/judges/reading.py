"""Reading a verdict from one OpenAI-style choice: the score tokens' probabilities, or a fallback.

Used by :class:`ouro_ray.judges.http.HTTPJudge`, kept apart from its transport. The judge never fails
to parse: it reads the verdict tokens from the top-K logprobs (whitespace stripped, so ``" 3"`` and
``"3"`` are one answer, their probabilities combined); with none there, the first verdict digit in the
sampled text; with none at all, nothing (the judge then scores neutral and says so).

Two answer shapes carry the same information:
completions: ``choice.logprobs.top_logprobs[0]`` is ``{token: logprob}``, the text is ``choice.text``;
chat: ``choice.logprobs.content[0].top_logprobs`` is ``[{token, logprob}, …]``, the text is
``choice.message.content``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Reading:
    """The verdict tokens read from one choice and where they came from: 'logprobs', 'text' or 'none'."""

    logprobs: Mapping[str, float]
    source: str


def merge_top_logprobs(top: Mapping[str, float]) -> dict[str, float]:
    """Top logprobs keyed by the whitespace-stripped token; tokens equal after stripping are combined.

    Why: a tokenizer may offer the score as ``" 3"`` and as ``"3"``; both are the same answer, so their
    probabilities add (``log(e^a + e^b)``, computed stably).
    """
    merged: dict[str, float] = {}
    for token, logprob in top.items():
        if not _finite(logprob):
            continue
        key = str(token).strip()
        merged[key] = _logaddexp(merged[key], float(logprob)) if key in merged else float(logprob)
    return merged


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _logaddexp(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def read_choice(choice: Mapping[str, Any], tokens: Sequence[str]) -> Reading:
    """The probabilities of ``tokens`` in one completions choice, falling back to its text, then to nothing.

    Why the fallbacks: a server may cap or omit logprobs, or the model may put its mass on other tokens;
    the judge must still give a verdict, and say how it got it.
    """
    return _read(_first_top_logprobs(choice), choice.get("text"), tokens)


def read_chat_choice(choice: Mapping[str, Any], tokens: Sequence[str]) -> Reading:
    """As :func:`read_choice`, for one chat choice: its first token's top logprobs, then its message's text."""
    message = choice.get("message")
    text = message.get("content") if isinstance(message, Mapping) else None
    return _read(_first_chat_top_logprobs(choice), text, tokens)


def _read(top: Mapping[str, float], text: Any, tokens: Sequence[str]) -> Reading:
    found = {k: v for k, v in merge_top_logprobs(top).items() if k in tokens}
    if found:
        return Reading(found, "logprobs")
    digit = next((ch for ch in text if ch in tokens), None) if isinstance(text, str) else None
    if digit is not None:
        return Reading({digit: 0.0}, "text")  # probability 1 on the sampled digit
    return Reading({}, "none")


def _first_top_logprobs(choice: Mapping[str, Any]) -> Mapping[str, float]:
    """``choice.logprobs.top_logprobs[0]`` or ``{}`` when the server left any part of it out."""
    logprobs = choice.get("logprobs")
    top = logprobs.get("top_logprobs") if isinstance(logprobs, Mapping) else None
    first = top[0] if isinstance(top, list) and top else None
    return first if isinstance(first, Mapping) else {}


def _first_chat_top_logprobs(choice: Mapping[str, Any]) -> dict[str, float]:
    """``choice.logprobs.content[0].top_logprobs`` as ``{token: logprob}``, or ``{}`` when any part is missing.

    A token listed twice keeps its first entry: the list may repeat a text, and adding both would count
    one answer twice (the completions shape, a mapping, cannot repeat one).
    """
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    first = content[0] if isinstance(content, list) and content else None
    top = first.get("top_logprobs") if isinstance(first, Mapping) else None
    table: dict[str, float] = {}
    for entry in top if isinstance(top, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("token"), str) and _finite(entry.get("logprob")):
            table.setdefault(entry["token"], float(entry["logprob"]))
    return table


def note(dimension: str, reading: Reading, top_k: int) -> str | None:
    """What ``notes`` says about one dimension's reading (nothing when the logprobs held a score token)."""
    if reading.source == "text":
        digit = next(iter(reading.logprobs))
        return f"{dimension}: no score token in top-{top_k} logprobs; read '{digit}' from the text"
    if reading.source == "none":
        return f"{dimension}: {UNREADABLE} (no score token in top-{top_k} logprobs or in the text; not scored)"
    return None


UNREADABLE = "unreadable"
"""What ``notes`` says of a dimension the judge's answer gave no verdict for (left out, never a neutral 0)."""
