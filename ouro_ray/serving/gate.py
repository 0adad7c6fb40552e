"""One generation at a time per replica, a bounded line of requests waiting for it, and a deadline for each.

Why serialised: seeding is global (``torch.manual_seed`` under ``fork_rng``) and the model shares the
replica's cores, so two ``generate`` calls at once would be slower than one after the other and would
break seeded answers. Why bounded: an unbounded line turns a burst into minutes of latency and
memory held by waiting bodies; past :attr:`~ouro_ray.serving.limits.ServeLimits.max_waiting` a request
is refused at once (429, with a Retry-After estimated from recent generations), and one that waits
past its deadline gets a 503. Waiting happens on the event loop, so the replica keeps answering
``/health`` and refusing bad requests while a generation runs in its thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Callable, TypeVar

from ouro_ray.serving.completions import CompletionRequestError
from ouro_ray.serving.limits import FLAGS

T = TypeVar("T")

RETRY_AFTER_MAX_S = 60
"""Longest Retry-After this server suggests."""


class GenerationGate:
    """Runs blocking generations one at a time in a worker thread; at most ``max_waiting`` more wait."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.waiting = 0
        """Requests waiting for the slot now (not counting the one generating)."""
        self.mean_s = 1.0
        """Moving average of recent generations' seconds (what Retry-After is estimated from)."""
        self._slot = asyncio.Semaphore(1)

    def retry_after(self) -> int:
        """Seconds until the line ahead has probably cleared (1 to :data:`RETRY_AFTER_MAX_S`)."""
        return max(1, min(RETRY_AFTER_MAX_S, math.ceil(self.mean_s * (self.waiting + 1))))

    async def run(self, generate: Callable[[], T], deadline: float) -> T:
        """``generate()``'s result, run in a thread once the slot is free; ``deadline`` is a ``time.monotonic()``.

        The slot is released when the thread ends, not when this coroutine does: a cancelled request
        (its client gone) must not let a second generation start beside the one still running.
        """
        if self._slot.locked() and self.waiting >= self.max_waiting:
            raise CompletionRequestError(
                f"the server is busy: {self.waiting} requests already wait for the model (the most this server "
                f"queues); retry after {self.retry_after()} s", None, status=429, kind="rate_limit_error",
                code="queue_full", retry_after=self.retry_after())
        self.waiting += 1
        waited = time.monotonic()
        try:
            await asyncio.wait_for(self._slot.acquire(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise CompletionRequestError(
                f"the request waited {time.monotonic() - waited:.1f} s for the model and reached its timeout; "
                f"retry after {self.retry_after()} s (the server sets the timeout with {FLAGS['request_timeout_s']})", None,
                status=503, kind="server_error", code="timeout", retry_after=self.retry_after()) from None
        finally:
            self.waiting -= 1
        started = time.monotonic()
        try:
            future = asyncio.get_running_loop().run_in_executor(None, generate)
        except BaseException:
            self._slot.release()
            raise

        def _done(_: asyncio.Future) -> None:  # on the event loop, once the thread has ended
            self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - started)
            self._slot.release()

        future.add_done_callback(_done)
        return await asyncio.shield(future)
