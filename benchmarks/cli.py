"""`ouro bench [SUITE …] [--out DIR] [--quick] [--reps K]`: run suites, write DIR/bench.json and PNGs.

Each suite runs the thing and its baseline side by side in this process tree, alternating, and
reports the median and min–max of their ratio plus the absolute figures (see benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

SUITES = {
    "loop-overhead": "benchmarks.loop_overhead",
    "async-speedup": "benchmarks.async_speedup",
    "judge-scaling": "benchmarks.judge_scaling",
    "data-plane": "benchmarks.data_plane",
    "weight-sync": "benchmarks.weight_sync",
    "rollout": "benchmarks.rollout",
    "learner": "benchmarks.learner",
    "demo": "benchmarks.demo",
}
"""Suite name → module; only modules that exist are offered (``available()``)."""


def available() -> dict[str, str]:
    """The suites whose module is present in this checkout."""
    root = Path(__file__).resolve().parent
    return {name: mod for name, mod in SUITES.items() if (root / f"{mod.rsplit('.', 1)[1]}.py").is_file()}


def run_suites(names: list[str], out: Path, quick: bool, reps: int | None, seed: int = 0,
               say=lambda m: None, namespace: str = "ouro-bench") -> dict:
    """Every named suite, in order, into one bench.json (written after each suite, so a crash keeps the rest)."""
    from benchmarks.harness import Context, machine, plot_ratio

    out.mkdir(parents=True, exist_ok=True)
    suites = available()
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; fix: choose from {sorted(suites)}")
    report = {"machine": machine(), "quick": quick, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "suites": {}}
    for name in names or list(suites):
        say(f"bench {name} ({'quick' if quick else 'full'})")
        module = importlib.import_module(suites[name])
        ctx = Context(out=out, quick=quick, reps=reps or (2 if quick else 3), seed=seed, namespace=namespace)
        started = time.perf_counter()
        try:
            result = module.run(ctx)
        except Exception as exc:  # one suite's failure (e.g. TRL missing) is recorded; the others still run
            result = {"suite": name, "error": f"{type(exc).__name__}: {exc}"}
            say(f"  failed: {result['error']}")
        result["seconds"] = round(time.perf_counter() - started, 2)
        report["suites"][name] = result
        if "error" not in result:
            plot_ratio(result, out / f"{name}.png")
            r = result["ratio"]
            say(f"  {result['ratio_name']}: median {r['median']:.3g} (min {r['min']:.3g}, max {r['max']:.3g}) "
                f"in {result['seconds']:.0f} s")
        (out / "bench.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def main(args: argparse.Namespace) -> int:
    out = Path(args.out or Path("bench") / time.strftime("%Y%m%d-%H%M%S"))
    report = run_suites(list(args.suites), out, args.quick, args.reps,
                        say=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{out / 'bench.json'}")
    failed = [name for name, r in report["suites"].items() if "error" in r]
    if failed:
        print(f"failed suites: {', '.join(failed)} (their errors are in bench.json)", file=sys.stderr)
    return 1 if failed else 0


def add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="throughput benchmarks: each thing vs its baseline, alternating; bench.json + PNGs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("suites", nargs="*", metavar="SUITE", help=f"suites to run (default: all): {', '.join(available())}")
    b.add_argument("--out", help="output directory (default: bench/<date-time>)")
    b.add_argument("--quick", action="store_true", help="small sizes and 2 repetitions: a couple of minutes")
    b.add_argument("--reps", type=int, help="repetitions per suite (default: 2 quick, 3 full)")
    b.set_defaults(func=main)
