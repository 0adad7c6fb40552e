"""Glue for async mode: the next rounds' experience made on a thread, and a stage clock for two threads.

In async mode the driver's main thread runs stage 6 (update) and the held-out evaluation, while one
thread, :class:`Ahead`, runs stages 1-5 and 7 of the following rounds. Round r's experience may
start once the update of round ``r - 1 - max_staleness`` has finished, so its candidates come from a
policy at most ``max_staleness`` versions older than the one that trains on them (sync mode is
``max_staleness = 0`` without the thread). Which version generated which slice depends on timing; every
candidate carries its ``policy_version`` and the metrics report the staleness each update saw.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


class StageClock:
    """Wall time per stage and round, for stages that may run on two threads at once.

    ``start(name, r, lane)`` ends the calling thread's running stage and starts the next; ``take(r)``
    returns round r's ``seconds_<stage>`` and its timeline rows (``{round, lane, stage, start, end}``,
    epoch seconds), which show where the lanes overlapped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = threading.local()
        self._seconds: dict[int, dict[str, float]] = {}
        self._timeline: dict[int, list[dict]] = {}

    def start(self, name: str, r: int, lane: str) -> None:
        self.stop()
        self._running.stage = (name, r, lane, time.time())

    def stop(self) -> None:
        """End the calling thread's running stage (if any)."""
        running = getattr(self._running, "stage", None)
        if running is None:
            return
        self._running.stage = None
        name, r, lane, start = running
        self.add(r, name, time.time() - start, lane=lane, start=start)

    def add(self, r: int, name: str, seconds: float, lane: str = "main", start: float | None = None) -> None:
        """Count ``seconds`` towards ``seconds_<name>`` of round r (waits are counted this way too)."""
        end = time.time() if start is None else start + seconds
        with self._lock:
            per_round = self._seconds.setdefault(r, {})
            per_round[name] = per_round.get(name, 0.0) + seconds
            self._timeline.setdefault(r, []).append({"round": r, "lane": lane, "stage": name,
                                                     "start": round(end - seconds, 3), "end": round(end, 3)})

    def take(self, r: int) -> tuple[dict[str, float], list[dict]]:
        with self._lock:
            seconds = self._seconds.pop(r, {})
            rows = self._timeline.pop(r, [])
        return {f"seconds_{k}": round(v, 3) for k, v in seconds.items()}, rows


class Ahead:
    """``produce(r)`` for rounds ``first .. last - 1`` in order on one thread, each once ``may_start(r)``.

    The main thread calls :meth:`take` for each round's result and :meth:`poke` whenever something
    ``may_start`` reads has changed. A failure in ``produce`` is raised by the next :meth:`take`.
    """

    def __init__(self, produce: Callable[[int], Any], first: int, last: int, may_start: Callable[[int], bool]):
        self._produce, self._may_start = produce, may_start
        self._rounds = range(first, last)
        self._ready: dict[int, Any] = {}
        self._error: BaseException | None = None
        self._stopped = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ouro-ahead", daemon=True)

    def __enter__(self) -> "Ahead":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self) -> None:
        try:
            for r in self._rounds:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopped or self._may_start(r))
                    if self._stopped:
                        return
                result = self._produce(r)
                with self._cond:
                    self._ready[r] = result
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the main thread by take()
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def poke(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self, r: int) -> Any:
        """Round r's result, waiting for it; re-raises the thread's failure."""
        if r not in self._rounds:
            raise ValueError(f"round {r} is not one this pipeline makes ({self._rounds.start}..{self._rounds.stop - 1})")
        with self._cond:
            self._cond.wait_for(lambda: r in self._ready or self._error is not None)
            if r in self._ready:
                return self._ready.pop(r)
            error = self._error
        error.add_note(f"while making round {r}'s experience ahead of the update (loop.mode=async)")
        raise error

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop before the next round (a stage in flight finishes; the thread is a daemon)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
