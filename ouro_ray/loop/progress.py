"""Rich progress for `ouro run`: one bar for the rounds, one for the stages of the current round.

In async mode a second stage bar, ``ahead``, follows the thread that makes the next rounds' experience.
"""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ouro_ray.loop.driver import STAGES, STEP


class LoopProgress:
    """``stage(name, lane)`` advances a stage bar; ``round_done(r, metrics)`` the round bar and prints a line."""

    def __init__(self, console, rounds: int, completed: int):
        self.console, self.rounds, self.completed = console, rounds, completed
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.started = time.monotonic()

    def __enter__(self) -> "LoopProgress":
        self.progress.__enter__()
        self.round_task = self.progress.add_task("rounds", total=self.rounds, completed=self.completed)
        self.stage_tasks = {"main": self.progress.add_task("stage: starting", total=len(STAGES))}
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def stage(self, name: str, lane: str = "main") -> None:
        if lane not in self.stage_tasks:
            self.stage_tasks[lane] = self.progress.add_task(lane, total=len(STAGES))
        prefix = "" if lane == "main" else f"{lane} "
        self.progress.update(self.stage_tasks[lane], description=f"{prefix}step {STEP[name]}: {name}",
                             completed=STAGES.index(name))

    def round_done(self, r: int, metrics: dict) -> None:
        self.progress.update(self.stage_tasks["main"], completed=len(STAGES))
        if r > 0:
            self.progress.update(self.round_task, completed=r)
        shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in ("reward_mean", "safety", "persona", "kl")
                          if isinstance(metrics.get(k), (int, float)))
        label = "before any update" if r == 0 else f"after round {r}"
        self.progress.console.print(f"held-out {label}: {shown}  [{time.monotonic() - self.started:.0f} s]")
