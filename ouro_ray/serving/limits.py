"""What one ``ouro serve`` request may ask of a replica, and the checks that hold requests to it.

A replica has one model and a few cores: a single request must not be able to take it down. So a
body is read only up to :attr:`ServeLimits.max_body_bytes`, ``max_tokens``, ``n`` and the number of
prompts are capped (a request over a cap is refused with a 400 naming the cap, never clipped), and a
request that waits or runs past :attr:`ServeLimits.request_timeout_s` is answered 503. How many may
wait for the model is :class:`~ouro_ray.serving.gate.GenerationGate`'s part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """The per-request bounds of one replica (``ouro serve --max-…``)."""

    max_body_bytes: int = MIB
    """Largest request body read; a bigger one answers 413 and is never parsed."""
    max_tokens: int = 512
    """Most tokens one choice may generate (``max_tokens`` / ``max_completion_tokens``); the context may allow fewer."""
    max_n: int = 16
    """Most choices per prompt (``n``)."""
    max_prompts: int = 32
    """Most prompts in one completions request (a list ``prompt``)."""
    max_waiting: int = 32
    """Most requests waiting for the model while one generates; one more answers 429 with Retry-After."""
    request_timeout_s: float = 120.0
    """Seconds a request may take from its first byte to its answer (reading, waiting, generating); past it, 503."""

    def __post_init__(self) -> None:
        for field in ("max_body_bytes", "max_tokens", "max_n", "max_prompts"):
            _check_int(field, getattr(self, field), low=1)
        _check_int("max_waiting", self.max_waiting, low=0)
        timeout = self.request_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or timeout <= 0:
            raise ValueError(f"request_timeout_s={timeout!r} must be a number of seconds > 0, e.g. 120")


FLAGS = {"max_body_bytes": "--max-body-bytes", "max_tokens": "--max-tokens", "max_n": "--max-n",
         "max_prompts": "--max-prompts", "max_waiting": "--max-waiting", "request_timeout_s": "--request-timeout"}
"""The ``ouro serve`` option that sets each limit (named in refusals, so a client's operator knows what to change)."""


def _check_int(field: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{field}={value!r} must be an integer >= {low} (ouro serve {FLAGS[field]})")


def over_cap(asked: str, value: int, cap: int, unit: str, fix: str, limit: str) -> str | None:
    """The refusal of a request that ``asked`` for ``value`` above ``cap`` (:class:`ServeLimits` field ``limit``),
    or None when it is within the cap. ``fix`` is what the client should send instead."""
    if value <= cap:
        return None
    return f"{asked} is above this server's cap of {cap} {unit}; fix: {fix}, or serve with a higher {FLAGS[limit]}"
