"""What every `ouro bench` suite shares: alternating repetitions, ratios, the machine, one JSON section.

A suite measures a thing and its baseline in the same process tree, alternating (thing, baseline,
thing, baseline, …) so that drift of the machine (thermal, other load, caches) hits both alike, and
reports the median and the min–max of the per-repetition ratio next to the absolute figures.

A suite module (``benchmarks/<name>.py``) defines::

    SUITE = "data-plane"                      # the name `ouro bench` takes
    def run(ctx: Context) -> dict             # its section of bench.json, from :func:`section`

and may write PNGs into ``ctx.out``. A suite that needs Ray opens it with ``with ray_cluster(ctx):``;
`ouro bench` holds one cluster (and one Ray Serve) open across its Ray suites, so each suite joins it
instead of paying Ray's and Serve's start-up again. A suite that must own its process tree (``demo``,
which runs `ouro run` as a child with its own cluster) sets ``RAY = False``: the shared cluster is
stopped before it runs.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class Context:
    """What a suite gets: where to write, how long to take, how many repetitions."""

    out: Path
    quick: bool
    reps: int
    seed: int = 0
    namespace: str = "ouro-bench"
    """Ray namespace to connect in (a test joins its session cluster's namespace)."""
    judge_latency_s: float = 0.05
    """judge-scaling's endpoint latency per request (``--judge-latency``)."""
    async_latency_s: float = 0.2
    """async-speedup's endpoint latency per request (``--async-latency``)."""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.reps, bool) or not isinstance(self.reps, int) or self.reps < 1:
            raise ValueError(f"--reps {self.reps!r}: need at least one repetition; fix: pass --reps 1 or more")
        for flag, value in (("--judge-latency", self.judge_latency_s), ("--async-latency", self.async_latency_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"{flag} {value!r} is not a latency; fix: give seconds per request >= 0, "
                                 f"e.g. {flag} 0.05")


CLUSTER_CPUS = 8
"""Logical CPUs of a cluster a suite (or `ouro bench`) starts: enough for every suite's actors at once
(loop-overhead's roles with 2 torch threads each: rollout 2, reference 2, judge 1, learner 2). Actors'
torch threads follow their own ``num_cpus``, not this."""


@contextmanager
def ray_cluster(ctx: Context) -> Iterator[Any]:
    """Join the Ray cluster already open in this process (`ouro bench`'s shared one, a test's session
    cluster), else start one for the block and stop it (and any Serve on it) at the end."""
    from cluster.local import connect, shutdown

    joining = bool(os.environ.get("RAY_ADDRESS"))  # a running cluster's size is not ours to set
    info = connect(None, num_cpus=None if joining else CLUSTER_CPUS, dashboard=False, namespace=ctx.namespace,
                   log_to_driver=False)
    try:
        yield info
    finally:
        if info.started_here:  # Serve's driver-side threads must stop before Ray does
            from ray import serve

            serve.shutdown()
            shutdown()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(wall seconds, fn())``."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def alternate(thing: Callable[[], float], baseline: Callable[[], float], reps: int,
              warmup: int = 1) -> tuple[list[float], list[float]]:
    """``reps`` figures of each, measured alternately after ``warmup`` unrecorded rounds of both.

    Each callable returns its own figure (seconds, items/s, …) so that setup outside the timed part
    stays out of it.
    """
    if reps < 1:
        raise ValueError(f"reps = {reps}: need at least one repetition; fix: pass --reps 1 or more")
    for _ in range(warmup):
        thing()
        baseline()
    a, b = [], []
    for _ in range(reps):
        a.append(float(thing()))
        b.append(float(baseline()))
    return a, b


def ratio_stats(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """Median and min–max of the per-repetition ratios ``numerator[i] / denominator[i]``."""
    ratios = [n / d for n, d in zip(numerator, denominator) if d]
    if not ratios:
        raise ValueError("no ratio: every denominator was 0")
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "n": len(ratios)}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def section(suite: str, *, ratio_name: str, ratio: dict[str, float], absolute: dict[str, Any],
            params: dict[str, Any], goal: str | None = None, notes: list[str] | None = None,
            better: str = "lower") -> dict:
    """One suite's entry in bench.json: what the ratio is, its spread, the absolute figures, the setup."""
    return {"suite": suite, "ratio_name": ratio_name, "ratio": ratio, "better": better, "goal": goal,
            "absolute": absolute, "params": params, "notes": notes or []}


def machine() -> dict[str, Any]:
    """Cores, memory, GPU (or none) and the versions that matter, for comparing numbers across machines."""
    import torch

    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                            "processor": platform.processor() or platform.machine(), "torch": torch.__version__}
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        info["ray"] = None
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        info["memory_gib"] = None
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def plot_ratio(result: dict, path: Path) -> Path:
    """A PNG of one suite: the per-repetition ratio's median with its min–max, and the goal if any."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    r = result["ratio"]
    fig = Figure(figsize=(4, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar([0], [r["median"]], color="tab:blue")
    ax.errorbar([0], [r["median"]], yerr=[[r["median"] - r["min"]], [r["max"] - r["median"]]], color="black",
                capsize=6)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks([0], [result["ratio_name"]])
    ax.set_title(f"{result['suite']}: median {r['median']:.3g} (min {r['min']:.3g}, max {r['max']:.3g}, n={r['n']})",
                 fontsize=8)
    fig.savefig(path, dpi=100)
    return path
