"""One fan-out mechanism for every group: chunks out, a deadline that moves with progress, resend when a worker dies.

Glue, not algorithm. A group (:class:`~actors.group.ActorGroup`: Ray actors; :class:`~actors.judge.JudgeGroup`:
a Serve deployment) splits its work into chunks and hands :func:`fan_out` two callables: ``submit(k,
attempt)`` starts chunk ``k`` (on another worker when ``attempt`` > 0, where the group can choose) and
returns a handle, ``wait(handle, timeout_s)`` blocks for its value. :func:`fan_out` then

- collects the chunks in order, each within ``timeout_s`` of the one before it (of the start, for the
  first): a deadline that moves with progress, so a call of many chunks queued on one worker (a round
  of 330 candidates on one judge replica, 6 chunks of about 100 s each) is not cut off for its size, and
  a worker that stops answering is still caught ``timeout_s`` after the last answer. A chunk that misses
  it raises :class:`TimeoutError` naming the role, the worker, the call and the config key that raises
  the limit;
- resends a chunk whose worker died (``retryable(exc)``: the actor or replica is gone, not the call
  failed) up to ``max_retries`` times, and accepts each chunk exactly once;
- resends a chunk whose worker is unreachable for now (:func:`worker_unreachable`: its node was lost and
  Ray has not declared it dead yet, which takes the GCS's health checks, about 15 s) every ``pause_s``
  until the deadline, whatever ``max_retries`` says: Ray's own retries of such a call are spent within
  milliseconds, and the actor comes back once Ray restarts it elsewhere. The roles' methods are safe to
  repeat (pure functions of their inputs and seed), and a chunk is still accepted once;
- re-raises any other failure as the original exception (type and traceback kept) with the role,
  worker and call noted on it (:func:`role_error`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def role_error(exc: BaseException, role: str, worker: str, call: str) -> BaseException:
    """The exception a remote call raised (unwrapped from Ray's task error), with the role, worker and
    call noted on it."""
    import ray.exceptions as rex

    original = exc.cause if isinstance(exc, rex.RayTaskError) and isinstance(exc.cause, BaseException) else exc
    original.add_note(f"in role {role!r}, actor {worker!r}, method {call!r}")
    return original


def worker_died(exc: BaseException) -> bool:
    """Whether ``exc`` says the worker (actor or Serve replica) is gone, so the chunk may be resent."""
    import ray.exceptions as rex

    return isinstance(exc, (rex.RayActorError, rex.ActorUnavailableError))


def worker_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the worker cannot be reached for now (``ActorUnavailableError``: its node is gone or
    cut off and not yet declared dead), so it may answer again once Ray has restarted it."""
    import ray.exceptions as rex

    return isinstance(exc, rex.ActorUnavailableError)


def fan_out(n_chunks: int, submit: Callable[[int, int], Any], wait: Callable[[Any, float], Any], *, role: str,
            worker: Callable[[int, int], str], call: str | Callable[[int], str], timeout_s: float, timeout_key: str,
            max_retries: int = 0, pause_s: float = 1.0,
            retryable: Callable[[BaseException], bool] = worker_died,
            on_resend: Callable[[int, int, BaseException], None] | None = None,
            on_collect: Callable[[int], None] | None = None) -> list[Any]:
    """The values of chunks ``0..n_chunks-1``, in order (see the module docstring).

    ``worker(k, attempt)`` names where chunk ``k`` ran, and ``call`` (or ``call(k)``) what it ran, for error
    messages; ``on_resend(k, attempt, exc)``
    is told of each resend (groups count them); ``on_collect(pending)`` of the chunks still out after
    each one is collected (the judge group's queue-depth gauge)."""
    what = call if callable(call) else (lambda k: call)
    handles = {k: submit(k, 0) for k in range(n_chunks)}
    deadline = time.monotonic() + timeout_s
    attempts = dict.fromkeys(handles, 0)
    out: list[Any] = []
    for k in range(n_chunks):
        while True:
            try:
                out.append(wait(handles[k], max(0.0, deadline - time.monotonic())))
                deadline = time.monotonic() + timeout_s  # the next chunk's time runs from this answer
                if on_collect is not None:
                    on_collect(n_chunks - k - 1)
                break
            except TimeoutError as exc:
                raise TimeoutError(
                    f"role {role!r}, actor {worker(k, attempts[k])!r}: {what(k)} gave no answer within {timeout_s:g} s "
                    f"of the chunk before it (chunk {k + 1} of {n_chunks}); fix: raise {timeout_key} or look at the actor "
                    "on the Ray dashboard") from exc
            except Exception as exc:
                unreachable = retryable(exc) and worker_unreachable(exc) and time.monotonic() < deadline
                if not retryable(exc) or (attempts[k] >= max_retries and not unreachable):
                    raise role_error(exc, role, worker(k, attempts[k]), what(k)) from exc
                if unreachable:  # paced: the worker's node may take seconds to be declared dead
                    time.sleep(min(pause_s, max(0.0, deadline - time.monotonic())))
                attempts[k] += 1
                if on_resend is not None:
                    on_resend(k, attempts[k], exc)
                handles[k] = submit(k, attempts[k])
    return out


def chunks(n_rows: int, size: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of at most ``size`` rows covering ``n_rows``."""
    return [(s, min(s + size, n_rows)) for s in range(0, n_rows, size)]


def flatten(parts: Sequence[Sequence[Any]]) -> list[Any]:
    return [x for part in parts for x in part]
