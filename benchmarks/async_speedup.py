"""async-speedup: the loop's items/s in ``loop.mode=async`` ÷ ``sync``, with a judge that waits on a remote endpoint.

Both modes run the whole loop (`ouro run`'s :meth:`Loop.run_rounds`: round-0 evaluation, then steps
1-7 and the held-out evaluation each round) on configs/tiny.yaml with small sizes, plus one more
teacher: the HTTP judge pointed at a loopback completions server that answers each request after
``latency_s`` (0.2 s; ``ouro bench --async-latency S``, see :mod:`benchmarks.latency_judge`), with 2
prompts a request and 4 requests in flight (a slow judge service: 40 prompts/s at 0.2 s), so judging
a round's candidates (3 rubric prompts each) waits seconds on the endpoint while using no CPU. That
is the case async mode is for: the next round's steps 1-5 and 7 (generation, judging) run on a
thread while this round's update (step 6) and evaluation run.

Items/s of a run = training candidates of rounds 1..R ÷ the sum of those rounds' ``seconds_round``
(start-up and the round-0 evaluation are not counted). The role groups (rollout, reference, the
judge group on Serve, the Ray Train learner) are built once and shared: every run is a fresh
:class:`Loop` with its own run directory, so start-up is paid once. One unrecorded warm-up run (one
sync round) comes first; then async and sync runs alternate ``reps`` times (at most 2; quick: smaller
sizes, 2 rounds, one run each). Ratio = async items/s ÷ sync items/s (better higher).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread
from benchmarks.latency_judge import MODEL, LatencyJudgeServer, free_port

SUITE = "async-speedup"
SIZES = ["loop.prompts_per_round=32", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=24",
         "data.synthetic_dialogs=12", "evaluation.size=8", "evaluation.held_out_dialogs=4"]
QUICK_SIZES = ["loop.prompts_per_round=8", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=16",
               "data.synthetic_dialogs=8", "evaluation.size=4", "evaluation.held_out_dialogs=4"]
HTTP = [f"judges.http.model={MODEL}", "judges.http.batch_size=2", "judges.http.max_in_flight=4",
        "judges.http.max_retries=0"]
ROUNDS, QUICK_ROUNDS = 3, 2
QUICK_REPS, FULL_REPS = 1, 2
MAX_REPS = 2
"""A full repetition is two whole runs (about two minutes here): ``--reps`` above this is capped."""


class Runs:
    """Role groups built once; :meth:`once` runs a fresh loop in one mode and returns its items/s."""

    def __init__(self, cfgs: dict, model_dir: str, tmp: Path):
        from ouro_ray.loop.roles import build_roles

        self.cfgs, self.model_dir, self.tmp = cfgs, model_dir, tmp
        self.roles = build_roles(cfgs["sync"], model_dir, tmp / "train", 0, lambda m: None)
        self.histories: dict[str, list[list[dict]]] = {"sync": [], "async": []}
        """Per mode, per run: the metrics of rounds 1..R."""
        self.overlaps: dict[str, list[float]] = {"sync": [], "async": []}
        self.runs = 0

    def once(self, mode: str, record: bool = True) -> float:
        from ouro_ray.config import to_dict
        from ouro_ray.loop.driver import Loop
        from ouro_ray.loop.run import held_out
        from ouro_ray.loop.rundir import RunDir
        from ouro_ray.stages.sources import DialogSource

        cfg = self.cfgs[mode]
        self.runs += 1
        run = RunDir(self.tmp / f"run{self.runs}-{mode}").create(to_dict(cfg))
        source = DialogSource(cfg, run.path)
        loop = Loop(cfg, run, self.roles, self.model_dir, held_out(cfg, run, source), source)
        history = loop.run_rounds()
        rounds = history[1:]  # entry 0 is the round-0 evaluation; start-up is before it
        items_per_s = sum(m["train_candidates"] for m in rounds) / sum(m["seconds_round"] for m in rounds)
        if record:
            self.histories[mode].append(rounds)
            self.overlaps[mode].append(overlap_seconds(read_jsonl(run.path / "timeline.jsonl")))
        return items_per_s

    def close(self) -> None:
        self.roles.close()


def read_jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def overlap_seconds(rows: list[dict]) -> float:
    """Seconds in which the main lane worked (not waiting for experience) while the ahead lane worked."""
    main = [(r["start"], r["end"]) for r in rows if r["lane"] == "main" and r["stage"] != "wait_experience"]
    ahead = [(r["start"], r["end"]) for r in rows if r["lane"] == "ahead"]
    return round(sum(max(0.0, min(a[1], b[1]) - max(a[0], b[0])) for a in main for b in ahead), 3)


def stage_seconds(histories: list[list[dict]]) -> dict[str, float]:
    """Per stage, the median over runs of its mean ``seconds_<stage>`` per round (lanes may overlap in async)."""
    keys = sorted({k for rounds in histories for m in rounds for k in m if k.startswith("seconds_")}
                  - {"seconds_round"})
    return {k[len("seconds_"):]: round(statistics.median(statistics.mean(m.get(k, 0.0) for m in rounds)
                                                         for rounds in histories), 3) for k in keys}


def configs(ctx: Context, base_url: str, serve_port: int) -> tuple[dict, list[str]]:
    from ouro_ray.config import load_config

    repo = Path(__file__).resolve().parents[1]
    rounds = QUICK_ROUNDS if ctx.quick else ROUNDS
    overrides = (QUICK_SIZES if ctx.quick else SIZES) + [f"rounds={rounds}", f"judges.http.base_url={base_url}", *HTTP,
                         f"cluster.namespace={ctx.namespace}", "cluster.worker_logs=false", "cluster.dashboard=false",
                         f"cluster.serve_port={serve_port}"]
    cfgs = {mode: load_config(str(repo / "configs/tiny.yaml"), overrides + [f"loop.mode={mode}"])
            for mode in ("sync", "async")}
    cfgs["warm-up"] = load_config(str(repo / "configs/tiny.yaml"), overrides + ["loop.mode=sync", "rounds=1"])
    return cfgs, overrides


def run(ctx: Context) -> dict:
    from ouro_ray.models.resolve import resolve_model

    latency_s = ctx.async_latency_s
    load = [round(os.getloadavg()[0], 2)]  # other processes on the machine skew every figure: say how busy it was
    reps = ctx.reps
    server = LatencyJudgeServer(latency_s)
    with server as base_url, tempfile.TemporaryDirectory(prefix="ouro-bench-async-") as tmp, ray_cluster(ctx):
        cfgs, overrides = configs(ctx, base_url, free_port())
        model_dir = str(resolve_model(cfgs["sync"].model.path, cfgs["sync"].world, cfgs["sync"].seed).model_dir)
        runs = None
        try:
            runs = Runs(cfgs, model_dir, Path(tmp))
            runs.once("warm-up", record=False)  # the learner's first update and the first generations are paid here
            async_ips, sync_ips = alternate(lambda: runs.once("async"), lambda: runs.once("sync"), reps=reps, warmup=0)
        finally:
            if runs is not None:
                runs.close()
    load.append(round(os.getloadavg()[0], 2))
    staleness = [statistics.mean(m["staleness"] for m in rounds) for rounds in runs.histories["async"]]
    rounds = cfgs["sync"].rounds
    return section(
        SUITE, ratio_name="async items/s / sync items/s", ratio=ratio_stats(async_ips, sync_ips), better="higher",
        goal=None,
        absolute={"async_items_per_s": spread(async_ips), "sync_items_per_s": spread(sync_ips),
                  "async_mean_staleness": spread(staleness),
                  "async_round_s": spread([m["seconds_round"] for h in runs.histories["async"] for m in h]),
                  "sync_round_s": spread([m["seconds_round"] for h in runs.histories["sync"] for m in h]),
                  "lanes_overlap_s_per_run": {m: spread(v) for m, v in runs.overlaps.items() if v},
                  "seconds_per_stage": {m: stage_seconds(h) for m, h in runs.histories.items()},
                  "endpoint_requests": server.counts()["requests"]},
        params={"config": "configs/tiny.yaml", "overrides": overrides, "rounds_timed": rounds, "reps": reps,
                "latency_s": latency_s, "latency_flag": "--async-latency", "max_staleness": cfgs["async"].loop.max_staleness,
                "warm_up": "one unrecorded sync run of 1 round on the same role groups",
                "order": "async, sync, async, sync, ...", "loadavg_1m_start_end": load},
        notes=["items/s = training candidates of rounds 1..R / their seconds_round (start-up and round-0 "
               "evaluation excluded); role groups are shared by every run, each run has its own run directory",
               "seconds_per_stage are per round, by the stage clock: in async mode the 'ahead' lane's stages "
               "overlap the main lane's update and evaluate, so they add up to more than a round",
               "on this 2-core machine the CPU-bound stages (generation, reference logprobs, the PPO update) "
               "compete for the same cores when they overlap: without the endpoint's latency async was slower "
               "than sync on the CPU-only demo; the speed-up comes from overlapping the judge's endpoint waits "
               "(and the evaluation's) with the update",
               "the endpoint is one resource both lanes share (its max_in_flight slots judge the training "
               "candidates and the evaluation's answers and pairs): overlapping judge waits with judge waits "
               "gains nothing, so the most async can gain is (judge + CPU) / max(judge, CPU) per round; with "
               "max_in_flight=2 (20 prompts/s) the judge was ~80 % of a sync round and async lost (0.93x, "
               "measured here on 2026-11-22)",
               "round 1 of a run cannot overlap anything (its experience is the first thing made), so with R "
               "rounds the overlap pays in R - 1 of them and the ratio understates the steady state",
               "the HTTP judge also judges the held-out evaluation (and, as the pairwise judge, its win rate), "
               "so each round's evaluation waits on the endpoint too"])
