"""judge-scaling: judged items/s of the judge group with N replicas against a remote endpoint, ÷ N × one replica.

The group is the real one (:class:`actors.judge.JudgeGroup`, a Ray Serve deployment of ``JudgeWorker``
replicas) and its only teacher is the HTTP judge, pointed at a loopback completions server that
answers every request after ``latency_s`` (50 ms; ``ouro bench --judge-latency S``), see
:mod:`benchmarks.latency_judge`. For N in 1, 2, 4, 8, 16 (quick: 1, 2, 4) the group is resized to
``min_workers = max_workers = N`` (one Serve application, redeployed), warmed up with one batch, then
scores the same ``judge_items`` batch ``reps`` times; items/s = items ÷ the wall time of
``JudgeGroup.score``. Efficiency(N) = items/s(N) ÷ (N × items/s(1)) for each repetition at N, with
items/s(1) the median of the one-replica repetitions (the Ns run one after another, not interleaved,
so pairing repetition k of N with repetition k of 1 would pair nothing in particular and let one
noisy one-replica batch swing every ratio); the headline ratio is the efficiency at the largest N
(better higher, 1 is linear).

Why these knobs: the endpoint's latency must be what one replica waits on, so each replica may hold
``max_in_flight = 2`` requests of ``batch_size = 1`` prompt (one rubric dimension per item): at
50 ms that caps a replica at 2 / 0.05 = 40 items/s whatever the CPU does, and N replicas at 40 N.
``chunk_size = 4`` items per request to a replica makes 64 requests of a 256-item batch, enough to
keep 16 replicas × 4 ongoing requests busy. Replicas reserve ``num_cpus = 0.01`` so 16 fit on 2 cores.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmarks.harness import Context, ratio_stats, ray_cluster, section, spread, timed
from benchmarks.latency_judge import MODEL, LatencyJudgeServer, free_port

SUITE = "judge-scaling"
WORKERS, QUICK_WORKERS = (1, 2, 4, 8, 16), (1, 2, 4)
ITEMS, QUICK_ITEMS = 256, 64
HTTP = dict(model=MODEL, dimensions=("helpful",), batch_size=1, max_in_flight=2, max_retries=0, timeout_s=30.0)
CHUNK_SIZE, NUM_CPUS = 4, 0.01
READY_TIMEOUT_S = 300.0
MAX_REPS = 3
"""Repetitions per N are capped (the 1-replica batch alone is ~8 s): ``--reps`` above this is cut to it."""


def synthetic_items(n: int):
    """``n`` judge items, one candidate per prompt (the tests' table shape)."""
    import pyarrow as pa

    from ouro_ray.judges.items import judge_items

    cands = pa.table({"prompt_id": [f"p{i}" for i in range(n)], "candidate_id": ["c0"] * n,
                      "text": [f"Answer number {i}: the river is long and the bridge is old." for i in range(n)]})
    prompts = pa.table({"prompt_id": [f"p{i}" for i in range(n)], "label": ["safe"] * n,
                        "prompt": [f"Tell me about place {i}?" for i in range(n)]})
    return judge_items(cands, prompts)


def judges_config(base_url: str, workers: int):
    from ouro_ray.config.judges import HTTPJudgeConfig, JudgesConfig, LLMJudgeConfig

    return JudgesConfig(rules=(), llm=LLMJudgeConfig(enabled=False), http=HTTPJudgeConfig(base_url=base_url, **HTTP),
                        min_workers=workers, max_workers=workers, num_cpus=NUM_CPUS, chunk_size=CHUNK_SIZE,
                        upscale_delay_s=0.0, downscale_delay_s=600.0, call_timeout_s=120.0, max_retries=0)


def wait_ready(group, workers: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until exactly ``workers`` replicas run and none start or stop (a resize is a rolling update)."""
    from ray import serve

    started = time.monotonic()
    while True:
        app = serve.status().applications.get(group.app)
        states = dict(app.deployments["judge"].replica_states) if app and "judge" in app.deployments else {}
        settled = sum(states.values()) == workers and str(app.status).endswith("RUNNING")
        if settled and states.get("RUNNING", 0) == workers:
            return
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"judge group {group.app!r}: {workers} replicas not running within {timeout_s:.0f} s "
                               f"(replica states {states}); fix: free memory/CPU or bench fewer workers")
        time.sleep(0.2)


def measure(group, items, server: LatencyJudgeServer) -> float:
    """Items/s of one ``score`` call; checks every item got its verdict from exactly one request."""
    server.reset_counts()
    seconds, out = timed(lambda: group.score(items))
    counts = server.counts()
    if out.scores.num_rows != items.num_rows or counts["prompts"] != items.num_rows:
        raise RuntimeError(f"judge-scaling: {out.scores.num_rows} verdicts from {counts['prompts']} endpoint prompts "
                           f"for {items.num_rows} items; the measurement is void")
    return items.num_rows / seconds


def run(ctx: Context) -> dict:
    from actors.judge import JudgeGroup

    workers = QUICK_WORKERS if ctx.quick else WORKERS
    n_items = QUICK_ITEMS if ctx.quick else ITEMS
    reps = ctx.reps
    latency_s = ctx.judge_latency_s
    load = [round(os.getloadavg()[0], 2)]  # other processes on the machine skew every figure: say how busy it was
    items = synthetic_items(n_items)
    server = LatencyJudgeServer(latency_s)
    per_n: dict[int, list[float]] = {}
    startup: dict[int, float] = {}
    peak: dict[int, int] = {}
    group = None
    with ray_cluster(ctx), server as base_url:
        try:
            for n in workers:
                began = time.perf_counter()
                if group is None:
                    group = JudgeGroup(judges_config(base_url, n), prefix=f"{ctx.namespace}-scaling",
                                       serve_port=free_port())
                else:
                    group.resize(n, n)
                wait_ready(group, n)
                startup[n] = round(time.perf_counter() - began, 2)
                measure(group, items, server)  # warm-up: first calls open the replicas' paths and caches
                per_n[n] = [measure(group, items, server) for _ in range(reps)]
                peak[n] = server.counts()["peak_in_flight"]
        finally:
            if group is not None:
                group.close()
    load.append(round(os.getloadavg()[0], 2))
    one, top = per_n[workers[0]], workers[-1]
    base = statistics.median(one)
    efficiency = {n: [tp / (n * base) for tp in per_n[n]] for n in workers}
    ideal = HTTP["max_in_flight"] * HTTP["batch_size"] / latency_s if latency_s else None
    plot_curve(per_n, ideal, ctx.out / "judge-scaling-curve.png", latency_s)
    return section(
        SUITE, ratio_name=f"items/s at {top} workers / ({top} x items/s at 1)",
        ratio=ratio_stats(per_n[top], [top * base] * len(per_n[top])), better="higher", goal=None,
        absolute={"items_per_s": {str(n): spread(v) for n, v in per_n.items()},
                  "efficiency": {str(n): spread(v) for n, v in efficiency.items()},
                  "replica_cap_items_per_s": ideal, "resize_to_ready_s": {str(n): s for n, s in startup.items()},
                  "peak_requests_in_flight": {str(n): p for n, p in peak.items()}},
        params={"workers": list(workers), "items": n_items, "latency_s": latency_s, "latency_flag": "--judge-latency",
                "http": {k: v for k, v in HTTP.items() if k != "model"}, "chunk_size": CHUNK_SIZE,
                "num_cpus_per_replica": NUM_CPUS, "reps": reps, "loadavg_1m_start_end": load,
                "order": "N ascending; warm-up then reps per N (a resize restarts replicas, so N is not interleaved)"},
        notes=[f"one replica is capped at max_in_flight x batch_size / latency = {ideal and round(ideal)} items/s by "
               "the endpoint alone; its measured rate below that is per-chunk overhead (Serve routing, ray.get of "
               "the batch, validation, building the scores table)",
               "on 2 cores the replicas share the CPU: each chunk costs CPU in the driver (routing 1 request per "
               f"{CHUNK_SIZE} items), in a replica and in the loopback server thread, so as N grows the wall time "
               "turns from endpoint waits into CPU queueing, and the batch's fixed cost (ray.put, the last "
               "chunk's tail) weighs more as the wait per N shrinks; efficiency below 1 is that, not the endpoint "
               "(a real endpoint also has a capacity of its own, absent here)",
               f"at {top} workers the endpoint saw at most {peak[top]} requests at once of the "
               f"{top * HTTP['max_in_flight']} the replicas may hold: the rest of the time they waited on CPU",
               "other processes on this shared machine skew these figures: see params.loadavg_1m_start_end"])


def plot_curve(per_n: dict[int, list[float]], ideal_per_replica: float | None, path: Path, latency_s: float) -> Path:
    """Items/s against N (median with min–max), the ideal N × items/s(1) line and the endpoint cap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ns = sorted(per_n)
    med = [statistics.median(per_n[n]) for n in ns]
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    below = [m - min(per_n[n]) for m, n in zip(med, ns)]
    above = [max(per_n[n]) - m for m, n in zip(med, ns)]
    ax.errorbar(ns, med, yerr=[below, above], marker="o", capsize=4, label="measured")
    ax.plot(ns, [n * med[0] for n in ns], "--", color="grey", label="ideal: N x items/s(1)")
    if ideal_per_replica:
        ax.plot(ns, [n * ideal_per_replica for n in ns], ":", color="tab:red", label="endpoint cap")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("judge workers (Serve replicas)")
    ax.set_ylabel("judged items / s")
    ax.set_title(f"judge-scaling: HTTP judge, {latency_s * 1000:.0f} ms per request", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path
