"""`ouro bench [SUITE …] [--out DIR] [--quick] [--reps K] [--judge-latency S] [--async-latency S]`.

Runs suites and writes DIR/bench.json and PNGs. Each suite runs the thing and its baseline side by
side in this process tree, alternating, and reports the median and min–max of their ratio plus the
absolute figures (see benchmarks/harness.py). The Ray suites share one cluster and one Ray Serve,
started once; start-up is never inside a timed part.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from contextlib import ExitStack
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
    "faults": "benchmarks.faults",
    "soak": "benchmarks.soak",
}
"""Suite name → module; only modules that exist are offered (``available()``)."""
NEEDS = {"learner": {"trl": "bench"}}
"""Suite name → {package a suite cannot run without: the extra of pyproject.toml that installs it}."""


def missing_extras(names: list[str]) -> list[str]:
    """One line per selected suite whose package is not installed, naming the extra (``make bench`` installs all)."""
    import importlib.util

    return [f"suite {name} needs {package}, which is not installed; fix: pip install -e '.[{extra}]' (or make bench)"
            for name in names for package, extra in NEEDS.get(name, {}).items()
            if importlib.util.find_spec(package) is None]


def available() -> dict[str, str]:
    """The suites whose module is present in this checkout."""
    root = Path(__file__).resolve().parent
    return {name: mod for name, mod in SUITES.items() if (root / f"{mod.rsplit('.', 1)[1]}.py").is_file()}


def run_suites(names: list[str], out: Path, quick: bool, reps: int | None, seed: int = 0,
               say=lambda m: None, namespace: str = "ouro-bench", judge_latency_s: float = 0.05,
               async_latency_s: float = 0.2) -> dict:
    """Every named suite, in order, into one bench.json (written after each suite, so a crash keeps the rest).

    The Ray suites run on one cluster opened at the first of them (or on the one this process is
    already connected to); a suite with ``RAY = False`` gets the machine to itself: the shared cluster
    is stopped before it.
    """
    from benchmarks.harness import Context, machine, plot_ratio, ray_cluster

    suites = available()
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; fix: choose from {sorted(suites)}")
    lacking = missing_extras(names or list(suites))
    if lacking:  # refused before the first suite starts, not recorded as a failure 20 minutes in
        others = [n for n in names or suites if not missing_extras([n])]
        raise ValueError("; ".join(lacking) + (f"; or run the others: ouro bench {' '.join(others)}" if others else ""))
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "quick": quick, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "suites": {}}

    def context(module) -> Context:
        """The suite's repetitions: ``reps``, else its default (``QUICK_REPS``/``FULL_REPS``: 2/3), at most
        its ``MAX_REPS`` (suites whose repetition is whole runs cap it to keep the full run under 30 min)."""
        default = getattr(module, "QUICK_REPS", 2) if quick else getattr(module, "FULL_REPS", 3)
        wanted = default if reps is None else reps
        return Context(out=out, quick=quick, reps=min(wanted, getattr(module, "MAX_REPS", wanted)), seed=seed,
                       namespace=namespace, judge_latency_s=judge_latency_s, async_latency_s=async_latency_s)

    context(None)  # bad --reps or latencies are refused before anything starts
    with ExitStack() as shared:
        cluster = None
        for name in names or list(suites):
            module = importlib.import_module(suites[name])
            ctx = context(module)
            wants_ray = getattr(module, "RAY", True)
            if wants_ray and cluster is None:
                cluster = shared.enter_context(ExitStack())
                cluster.enter_context(ray_cluster(ctx))
            elif not wants_ray and cluster is not None:
                cluster.close()  # stops the cluster if this process started it
                cluster = None
            capped = f", capped from {reps}" if reps is not None and reps > ctx.reps else ""
            say(f"bench {name} ({'quick' if quick else 'full'}, {ctx.reps} reps{capped})")
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
    report["seconds"] = round(sum(r["seconds"] for r in report["suites"].values()), 2)
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def main(args: argparse.Namespace) -> int:
    out = Path(args.out or Path("bench") / time.strftime("%Y%m%d-%H%M%S"))
    started = time.perf_counter()
    report = run_suites(list(args.suites), out, args.quick, args.reps,
                        say=lambda m: print(m, file=sys.stderr, flush=True),
                        judge_latency_s=args.judge_latency, async_latency_s=args.async_latency)
    print(f"{len(report['suites'])} suite(s) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
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
    b.add_argument("--quick", action="store_true",
                   help="small sizes, fewer repetitions: a smoke test of every suite")
    b.add_argument("--reps", type=int,
                   help="repetitions per suite (default: 2 quick, 3 full; loop-overhead 5 full, async-speedup 1 quick "
                        "and 2 full at most, judge-scaling 3 at most, demo 1)")
    b.add_argument("--judge-latency", type=float, default=0.05, metavar="S",
                   help="judge-scaling: seconds the loopback judge endpoint waits per request (default 0.05)")
    b.add_argument("--async-latency", type=float, default=0.2, metavar="S",
                   help="async-speedup: seconds the loopback judge endpoint waits per request (default 0.2)")
    b.set_defaults(func=main)
