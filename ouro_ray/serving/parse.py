"""``ouro serve``'s requests: OpenAI JSON bodies checked into typed requests, and the refusal every route answers.

Pure (no model, no HTTP): every error names the field, the value and the rule, and a field over one of
the server's caps (:class:`~ouro_ray.serving.limits.ServeLimits`) names the cap and the option that sets it.
The chat route's own fields are checked in :mod:`ouro_ray.serving.chat` with the helpers here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from ouro_ray.serving.limits import ServeLimits, over_cap

MAX_LOGPROBS = 20
"""Largest ``logprobs`` (top-K) a request may ask for (vLLM's and OpenAI's default cap)."""
DEFAULT_LIMITS = ServeLimits()
"""The limits a request is checked against unless the server was given others."""
MAX_STOP = 4
"""Most stop strings (the OpenAI limit)."""

_NEUTRAL = {
    "stream": (False, None), "suffix": (None,), "best_of": (None, 1), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0), "echo": (False, None),
}
"""OpenAI fields accepted only at their neutral value: clients send them, this server does not implement them."""
_KNOWN = {"model", "prompt", "max_tokens", "temperature", "top_p", "n", "logprobs", "stop", "seed", "user", *_NEUTRAL}


class CompletionRequestError(ValueError):
    """A request this server refuses; ``param`` names the field, ``status`` is the HTTP status to answer.

    ``code`` is OpenAI's machine-readable reason (``None`` for most refusals); ``retry_after`` the seconds
    a client should wait before sending it again (a busy server's 429 and 503), sent as Retry-After.
    """

    def __init__(self, message: str, param: str | None, *, status: int = 400,
                 kind: str = "invalid_request_error", code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.param, self.status, self.kind, self.code, self.retry_after = param, status, kind, code, retry_after

    def body(self) -> dict[str, Any]:
        """The OpenAI error object, so clients (``HTTPJudge``, the openai SDK) show the message."""
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class CompletionRequest:
    """One validated completions request (the OpenAI fields this server implements)."""

    prompts: tuple[str, ...]
    model: str | None = None
    max_tokens: int = 16
    temperature: float = 1.0
    """0: greedy decoding."""
    top_p: float = 1.0
    n: int = 1
    logprobs: int | None = None
    """Top-K alternatives per generated token; None: no logprobs in the answer."""
    stop: tuple[str, ...] = ()
    seed: int | None = None


# --- request validation: every error names the field, the value and the rule ------------------------


def parse_request(body: Any, limits: ServeLimits = DEFAULT_LIMITS) -> CompletionRequest:
    """The request in ``body`` (decoded JSON), or :class:`CompletionRequestError` naming the bad field."""
    if not isinstance(body, Mapping):
        raise CompletionRequestError(f"the body must be a JSON object, got {type(body).__name__}", None)
    check_fields(body, _KNOWN, _NEUTRAL)
    return CompletionRequest(prompts=_prompts(body.get("prompt"), limits.max_prompts),
                             logprobs=integer_field(body, "logprobs", None, 0, MAX_LOGPROBS),
                             **sampling_fields(body, limits))


def sampling_fields(body: Mapping[str, Any], limits: ServeLimits,
                    max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """The fields both routes share (model and sampling settings), checked; keyed as in :class:`CompletionRequest`."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise CompletionRequestError(f"model={model!r} must be a string", "model")
    return dict(model=model, max_tokens=capped(body, max_tokens_field, 16, limits.max_tokens, "max_tokens", "tokens"),
                temperature=number_field(body, "temperature", 1.0, 0.0, 2.0),
                top_p=number_field(body, "top_p", 1.0, 0.0, 1.0, open_low=True),
                n=capped(body, "n", 1, limits.max_n, "max_n", "choices per prompt"),
                stop=stop_field(body.get("stop")), seed=integer_field(body, "seed", None, 0, 2**63 - 1))


def capped(body: Mapping[str, Any], field: str, default: int, cap: int, limit: str, unit: str) -> int:
    """``body[field]``, an integer >= 1 and at most ``cap`` (the server's ``limit``), or ``default``."""
    value = integer_field(body, field, default, 1, None)
    refusal = over_cap(f"{field}={value}", value, cap, unit, f"send {field} <= {cap}", limit)
    if refusal:
        raise CompletionRequestError(refusal, field)
    return value


def check_fields(body: Mapping[str, Any], known: set[str], neutral: Mapping[str, tuple]) -> None:
    """Refuse a field outside ``known``, or a ``neutral`` one (a field this server does not implement) off its
    neutral value."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise CompletionRequestError(f"unknown field {unknown[0]!r}; this server reads {sorted(known)}", unknown[0])
    for field, values in neutral.items():
        value = body.get(field)
        if not any(value == v and type(value) is type(v) for v in values):
            raise CompletionRequestError(
                f"{field}={json.dumps(value, default=repr)} is not supported by this server; fix: leave {field} out "
                f"(accepted: {', '.join(json.dumps(v) for v in values)})", field)


def _prompts(prompt: Any, max_prompts: int) -> tuple[str, ...]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise CompletionRequestError(
            f"prompt must be a string or a non-empty list of strings (token-id prompts are not supported), "
            f"got {str(prompt)[:80]!r}", "prompt")
    refusal = over_cap(f"prompt holds {len(prompts)} prompts, which", len(prompts), max_prompts, "per request",
                       f"send at most {max_prompts} prompts per request (split the list)", "max_prompts")
    if refusal:
        raise CompletionRequestError(refusal, "prompt")
    return tuple(prompts)


def stop_field(stop: Any) -> tuple[str, ...]:
    """``stop`` as a tuple of strings: one string, a list of at most :data:`MAX_STOP`, or none."""
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise CompletionRequestError(f"stop={stop!r} must be a non-empty string or a list of at most {MAX_STOP}",
                                     "stop")
    return tuple(stops)


def integer_field(body: Mapping[str, Any], field: str, default: int | None, low: int,
                  high: int | None) -> int | None:
    """``body[field]``, an integer in ``[low, high]`` (no upper bound when ``high`` is None), or ``default``."""
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise CompletionRequestError(f"{field}={value!r} must be an integer {rule}", field)
    return value


def number_field(body: Mapping[str, Any], field: str, default: float, low: float, high: float,
                 open_low: bool = False) -> float:
    """``body[field]``, a finite number in ``[low, high]`` (``(low, high]`` when ``open_low``), or ``default``."""
    value = body.get(field)
    if value is None:
        return default
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (open_low and value == low):
        raise CompletionRequestError(
            f"{field}={value!r} must be a number {'>' if open_low else '>='} {low} and <= {high}", field)
    return float(value)
