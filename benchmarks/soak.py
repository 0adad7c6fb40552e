"""soak: a long `ouro run`, the resident memory of every process it starts sampled all along.

The run is a child process (`configs/tiny.yaml`, ``rounds`` rounds); its whole process tree (the
driver, the raylet, every Ray worker and actor) is sampled every ``interval`` seconds: the summed RSS,
and each process's own RSS by its name (an actor's name on Ray's process title, e.g.
``ray::RolloutWorker``). Round boundaries come from the run's ``metrics.json`` as it grows. The ratio
is the growth of the summed RSS from the end of round 1 (everything has started and warmed) to the
end of the run: goal ≤ 1.10 (under 10 % growth). ``soak.png`` draws the curve with the rounds marked;
``soak.json`` keeps every sample. ``--quick``: 3 small rounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.harness import Context, section

SUITE = "soak"
RAY = False
"""The run starts its own cluster in a child process: `ouro bench` stops its shared one first."""
ROUNDS, QUICK_ROUNDS = 30, 3
QUICK = ["loop.prompts_per_round=16", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=16",
         "data.synthetic_dialogs=8", "evaluation.held_out_dialogs=4", "evaluation.size=4"]
GOAL = 1.10


def _name(proc) -> str:
    """A process's role: Ray's title for workers (``ray::RolloutWorker``), else its command's basename."""
    try:
        cmd = proc.cmdline()
    except Exception:  # gone, or not ours to read
        return "?"
    if cmd and cmd[0].startswith("ray::"):  # "ray::RolloutWorker.generate" while busy: the method is dropped
        return cmd[0].split()[0].split(".")[0]
    return Path(cmd[0]).name if cmd else proc.name()


def sample(root) -> dict[str, int]:
    """RSS bytes of ``root`` and its descendants, summed by process name."""
    import psutil

    by_name: dict[str, int] = defaultdict(int)
    for proc in [root, *root.children(recursive=True)]:
        try:
            by_name[_name(proc)] += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return dict(by_name)


def soak(rounds: int, overrides: list[str], out: Path, log: Path, interval: float = 1.0) -> dict:
    """One `ouro run configs/tiny.yaml rounds=N` into ``out``; the samples and round end times."""
    import psutil

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "ouro_ray.cli", "run", str(repo / "configs/tiny.yaml"), f"rounds={rounds}",
           *overrides, "--out", str(out)]
    samples, start = [], time.time()
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=repo)
        root = psutil.Process(child.pid)
        while child.poll() is None:
            samples.append({"t": round(time.time() - start, 2), "rss": sample(root)})
            time.sleep(interval)
    if child.returncode != 0:
        raise RuntimeError(f"the soak run failed (exit {child.returncode}); its log: {log}")
    return {"samples": samples, "round_ends": round_ends(out / "timeline.jsonl", start),
            "seconds": time.time() - start}


def round_ends(timeline: Path, start: float) -> dict[int, float]:
    """Seconds from ``start`` to the end of each measured round (``metrics.json``'s index: round r + 1 ends
    with training round r's held-out measurement), from the run's ``timeline.jsonl``."""
    ends: dict[int, float] = {}
    for line in timeline.read_text().splitlines():
        row = json.loads(line)
        ends[row["round"] + 1] = max(ends.get(row["round"] + 1, 0.0), round(row["end"] - start, 2))
    return ends


def growth(result: dict, after_round: int = 1) -> dict:
    """Summed RSS at the end of round ``after_round`` and at the end of the last round (the last samples
    taken before each was written: the run's shutdown after it is not part of the soak), and their ratio;
    per process name too."""
    samples, ends = result["samples"], {int(k): v for k, v in result["round_ends"].items()}
    if not ends or after_round not in ends:
        raise ValueError(f"the run measured no round {after_round} (rounds seen: {sorted(ends)}); fix: soak more rounds")

    def before(t: float) -> dict:
        return max((s for s in samples if s["t"] <= t), key=lambda s: s["t"], default=samples[0])

    base, last = before(ends[after_round]), before(ends[max(ends)])
    total = lambda s: sum(s["rss"].values())  # noqa: E731
    per = {n: {"after_round_mib": base["rss"].get(n, 0) / 2**20, "end_mib": v / 2**20}
           for n, v in last["rss"].items()}
    return {"after_round_mib": total(base) / 2**20, "end_mib": total(last) / 2**20,
            "ratio": total(last) / max(total(base), 1), "per_process": per}


def plot(result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ts = [s["t"] for s in result["samples"]]
    ax.plot(ts, [sum(s["rss"].values()) / 2**30 for s in result["samples"]], color="#4c72b0")
    for r, t in result["round_ends"].items():
        ax.axvline(t, color="#bbbbbb", lw=0.8)
        ax.text(t, ax.get_ylim()[1], str(r), fontsize=7, ha="center", va="bottom")
    ax.set_xlabel("seconds (grey: end of each measured round)")
    ax.set_ylabel("RSS of the run's processes, GiB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(ctx: Context) -> dict:
    rounds = QUICK_ROUNDS if ctx.quick else ROUNDS
    overrides = [*QUICK, "cluster.namespace=ouro-bench-soak", "cluster.dashboard=false"]
    with tempfile.TemporaryDirectory(prefix="ouro-bench-soak-") as tmp:
        result = soak(rounds, overrides, Path(tmp) / "run", ctx.out / "soak.log")
    g = growth(result)
    (ctx.out / "soak.json").write_text(json.dumps({**result, "growth": g}, indent=1))
    plot(result, ctx.out / "soak.png")
    return section(SUITE, ratio_name="summed RSS at the end ÷ at the end of round 1",
                   ratio={"median": g["ratio"], "min": g["ratio"], "max": g["ratio"], "n": 1},
                   absolute={"after_round_1_mib": round(g["after_round_mib"], 1), "end_mib": round(g["end_mib"], 1),
                             "seconds": round(result["seconds"], 1), "rounds": rounds,
                             "per_process_end_mib": {n: round(v["end_mib"], 1) for n, v in g["per_process"].items()}},
                   params={"command": f"ouro run configs/tiny.yaml rounds={rounds}", "overrides": overrides},
                   goal=f"<= {GOAL} (under 10 % growth after round 1)")
