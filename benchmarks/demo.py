"""demo: wall time and peak RSS of `make demo`'s run (`ouro run configs/tiny.yaml`), against its budget.

The run is a child process; its whole process tree (the driver, the raylet, every Ray worker and
actor) is sampled twice a second and the peak of the summed resident set size is kept. The ratio is
wall time ÷ the 10-minute budget the loop issue sets for `make demo` on a 2-core machine (goal ≤ 1).
``--quick`` runs one small round instead of the demo's four.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Context, ratio_stats, section, spread

SUITE = "demo"
RAY = False
"""The run starts its own cluster in a child process: `ouro bench` stops its shared one first."""
QUICK_REPS = FULL_REPS = 1
"""One demo run is minutes and its spread is small (the run is seeded); ``--reps K`` runs it K times."""
BUDGET_S = 600.0
QUICK = ["rounds=1", "loop.prompts_per_round=16", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=16",
         "data.synthetic_dialogs=8", "evaluation.held_out_dialogs=4", "evaluation.size=4"]


def tree_rss(root) -> int:
    """Bytes resident in ``root`` and all its descendants (processes that vanish mid-walk are skipped)."""
    import psutil

    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_demo(overrides: list[str], out: Path, log: Path) -> tuple[float, int]:
    """``(wall seconds, peak tree RSS bytes)`` of one `ouro run configs/tiny.yaml` into ``out``."""
    import psutil

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "ouro_ray.cli", "run", str(repo / "configs/tiny.yaml"), *overrides, "--out", str(out)]
    start, peak = time.perf_counter(), 0
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=repo)
        root = psutil.Process(child.pid)
        while child.poll() is None:
            peak = max(peak, tree_rss(root))
            time.sleep(0.5)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"the demo run failed (exit {child.returncode}); its log: {log}")
    return seconds, peak


def run(ctx: Context) -> dict:
    overrides = (QUICK if ctx.quick else []) + ["cluster.namespace=ouro-bench-demo", "cluster.dashboard=false"]
    reps = ctx.reps
    walls, peaks = [], []
    with tempfile.TemporaryDirectory(prefix="ouro-bench-demo-") as tmp:
        for k in range(reps):
            seconds, peak = run_demo(overrides, Path(tmp) / f"run{k}", ctx.out / f"demo-{k}.log")
            walls.append(seconds)
            peaks.append(peak / 2**30)
    return section(SUITE, ratio_name="demo wall / 10 min budget", ratio=ratio_stats(walls, [BUDGET_S] * len(walls)),
                   absolute={"wall_s": spread(walls), "peak_rss_gib": spread(peaks)},
                   params={"command": "ouro run configs/tiny.yaml", "overrides": overrides, "runs": reps,
                           "world": "cached (the first run on a machine adds ~80 s to build it)"},
                   goal="<= 1.0 (10 minutes)", notes=["peak RSS sums the driver, raylet and every Ray worker"])
