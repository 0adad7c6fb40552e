"""faults: the fault drill. During a real `ouro run`, kill one part of it and check the run comes through whole.

Each drill runs the same small sync-mode run as a clean reference and kills, when round 1 starts
(its dialogues are on disk), in turn:

=================== ==================================================================================
fault               how it is killed, and who brings it back
=================== ==================================================================================
rollout actor       ``ray.kill`` of ``<ns>/rollout/0`` (restart allowed): Ray restarts it
                    (``rollout.workers.max_restarts``), it loads the latest weights, the call is retried
reference actor     the same for ``<ns>/reference/0``
reward-model actor  the same for ``<ns>/reward/0`` (stage 7's refitted reward model)
judge replica       ``ray.kill`` of the Serve replica (no restart): Serve starts a new one, the chunk is resent
weight store        ``ray.kill`` of ``<ns>/weights`` (restart allowed): it restarts empty; the learner
                    publishes its version again before the next generation
learner worker      ``kill -9`` of the Ray Train worker's process: Ray Train restarts the worker group
                    (``learner.max_failures``) from the last checkpoint; the interrupted update is redone
driver              ``kill -9`` of the `ouro run` process, then ``ouro run --resume``
node                on a real two-node cluster (two `ray start` processes, :func:`start_nodes`): ``kill -9``
                    of the second node's raylet and every worker it started; Ray restarts its actors on the
                    head, Serve its judge replica, Ray Train its worker group (:func:`node_overrides`)
=================== ==================================================================================

and checks: the run completes; every prompt id and candidate id of every round appears exactly once
in its shards (candidates, rewards, one score row per candidate and teacher); and the metrics equal the
clean run's (sync mode is seeded: every figure but the wall times and the restart counters). Time to
recover: the drilled run's wall time minus the clean run's.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.harness import Context, ray_cluster, section

SUITE = "faults"
RAY = False
"""The driver drill runs `ouro run` as child processes with their own cluster: `ouro bench` stops its shared one."""

IN_PROCESS = ("rollout actor", "reference actor", "reward-model actor", "judge replica", "weight store",
              "learner worker")
FAULTS = (*IN_PROCESS, "driver", "node")
VOLATILE = ("seconds", "_per_s", "learner_restarts", "resubmitted", "wait_")
"""Metric keys that may differ from the clean run's: wall times, rates over them (``update_tokens_per_s``) and
restart counters."""

DRILL = [
    "rounds=2", "loop.mode=sync", "data.synthetic_dialogs=3", "loop.prompts_per_round=8", "distill.use_ai=false",
    "judges.llm.enabled=false", "judges.constitution.enabled=false", "learner.ppo.ptx_coef=0",
    "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=12", "rollout.workers.num_workers=1",
    "rollout.workers.num_cpus=0.5", "reference.workers.num_workers=1", "reference.workers.num_cpus=0.25",
    "judges.min_workers=1", "judges.max_workers=1", "judges.num_cpus=0.25", "learner.algo=ppo",
    "learner.num_workers=1", "learner.num_cpus_per_worker=0.5", "reward_model.refit_every=1",
    "reward_model.workers.num_workers=1", "reward_model.workers.num_cpus=0.25", "evaluation.held_out_dialogs=2",
    "evaluation.size=4", "evaluation.n=2", "evaluation.bootstrap=100", "evaluation.stress=false"]
"""A small sync run with every role as its own actor (one each), the reward model refitted in the loop."""


# --- the faults ------------------------------------------------------------------------------------

def _kill_named(name: str, namespace: str, restart: bool = True) -> None:
    import ray

    ray.kill(ray.get_actor(name, namespace=namespace), no_restart=not restart)


def _kill_judge_replica(ns: str) -> None:
    import ray

    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith(f"SERVE_REPLICA::{ns}-judges#")]
    if not replicas:
        raise RuntimeError(f"no judge replica of app {ns}-judges is running")
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)


def _kill_learner_worker(ns: str) -> None:
    import ray

    pids = ray.get(ray.get_actor(f"{ns}/learner-channel", namespace=ns).worker_pids.remote(), timeout=60)
    os.kill(pids[0], signal.SIGKILL)


def killer(fault: str, ns: str) -> Callable[[], None]:
    """The kill of one in-process fault (see the module doc)."""
    kills = {"rollout actor": lambda: _kill_named(f"{ns}/rollout/0", ns),
             "reference actor": lambda: _kill_named(f"{ns}/reference/0", ns),
             "reward-model actor": lambda: _kill_named(f"{ns}/reward/0", ns),
             "weight store": lambda: _kill_named(f"{ns}/weights", ns),
             "judge replica": lambda: _kill_judge_replica(ns),
             "learner worker": lambda: _kill_learner_worker(ns)}
    if fault not in kills:
        raise ValueError(f"fault {fault!r} is unknown; faults run in process: {', '.join(kills)}")
    return kills[fault]


# --- one drill -------------------------------------------------------------------------------------

def _when_round_starts(run_path: Path, r: int, action: Callable[[], None], done: threading.Event,
                       fired: list[float], errors: list[BaseException]) -> threading.Thread:
    """A thread that runs ``action`` once round ``r``'s dialogues are on disk (its first stage has run)."""
    def watch() -> None:
        marker = run_path / f"round_{r:03d}" / "dialogs.parquet"
        while not done.is_set():
            if marker.is_file():
                try:
                    action()
                    fired.append(time.time())
                except BaseException as exc:  # reported by the drill, not lost in a thread
                    errors.append(exc)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, name="ouro-fault-drill", daemon=True)
    thread.start()
    return thread


def drill_in_process(config: str | None, overrides: list[str], out: Path, faults: tuple[str, ...] = (),
                     at_round: int = 1) -> dict[str, Any]:
    """One `ouro run` into ``out`` on the connected cluster, with ``faults`` injected when round ``at_round``
    starts; ``{"history", "seconds", "killed_at"}``."""
    from rich.console import Console

    from ouro_ray.loop.run import open_run, run

    cfg, run_dir = open_run(config, overrides, str(out), None)
    ns = cfg.cluster.namespace
    done, fired, errors = threading.Event(), [], []

    def inject() -> None:
        for fault in faults:
            killer(fault, ns)()

    watcher = _when_round_starts(run_dir.path, at_round, inject, done, fired, errors) if faults else None
    start = time.perf_counter()
    try:
        with open(out.parent / f"{out.name}.log", "w") as log:
            history = run(cfg, run_dir, console=Console(file=log, width=160))
    finally:
        done.set()
        if watcher is not None:
            watcher.join(5)
    if errors:
        raise RuntimeError(f"the drill could not inject {faults}: {errors[0]!r}") from errors[0]
    if faults and not fired:
        raise RuntimeError(f"round {at_round} never started: the faults {faults} were not injected")
    return {"history": history, "seconds": time.perf_counter() - start, "killed_at": fired[0] if fired else None}


def _ouro(args: list[str], log: Any, env: dict[str, str] | None = None) -> Any:
    """``ouro ARGS`` as a child process in its own session (killed as a group by the driver drill)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-m", "ouro_ray.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                            cwd=repo, start_new_session=True, env=None if env is None else {**os.environ, **env})


def _history(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["rounds"]


def drill_driver(config: str, overrides: list[str], out: Path, at_round: int | None = 1) -> dict[str, Any]:
    """An `ouro run` child process; when round ``at_round`` starts, ``kill -9`` of it and everything it started,
    then ``ouro run --resume`` (``at_round`` None: a clean run, for the time it takes)."""
    start, killed_at, log_path = time.perf_counter(), None, out.parent / f"{out.name}.log"
    with open(log_path, "w") as log:
        child = _ouro(["run", config, *overrides, "--out", str(out)], log)
        marker = None if at_round is None else out / f"round_{at_round:03d}" / "dialogs.parquet"
        while child.poll() is None and not (marker is not None and marker.is_file()):
            time.sleep(0.05)
        if marker is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # the driver and what it started: its cluster dies with it
            child.wait()
            killed_at = time.time()
            child = _ouro(["run", "--resume", str(out)], log)
            child.wait()
    if child.returncode != 0 or (marker is not None and killed_at is None):
        raise RuntimeError(f"the driver drill failed (exit {child.returncode}, killed: {killed_at is not None}); "
                           f"its log: {log_path}")
    return {"history": _history(out), "seconds": time.perf_counter() - start, "killed_at": killed_at}


# --- a lost node: a real second raylet, killed -------------------------------------------------------

NODE_CPUS = {"head": 4, "node2": 8}
"""Logical CPUs of the node drill's nodes (more than this machine's cores: the roles reserve more than they
compute)."""

NODE_RESOURCES = {"head": {"rollout_node": 1, "ouro_roles": 1, "learner_slot": 2},
                  "node2": {"ouro_roles": 1, "learner_slot": 8}}
"""Custom resources of the node drill's two nodes: ``ouro_roles`` and ``learner_slot`` on both, so a role asking
for them can restart on either; the head has room for everything the second node holds."""


def node_overrides(address: str) -> list[str]:
    """The drill's run joined to the two-node cluster at ``address``, every role placed by custom resources.

    The rollout asks for ``rollout_node`` (the head only) and half of the head's CPUs. The reference, the
    reward model and the judges ask for ``ouro_roles``, which both nodes carry: Ray's default scheduler keeps an
    actor on the node that asks (the driver's: the head) only while that node is less than half used, then
    takes the least-used node, so they start on the second node; the two judge replicas are spread, one per
    node. The learner's Ray Train worker asks for a ``learner_slot``: a placement group goes to the node with
    the most room left relative to its size, the second node (7 of 8 slots free, against 1 of 2). When the
    second node is lost, all of it restarts on the head, which has room for it."""
    on = "{ouro_roles: 0.01}"
    return [f"cluster.address={address}", "cluster.num_cpus=null",  # a joined cluster is not the run's to size
            f"rollout.workers.num_cpus={NODE_CPUS['head'] // 2}",
            "rollout.workers.resources={rollout_node: 0.01}", f"reference.workers.resources={on}",
            f"judges.resources={on}", "judges.min_workers=2", "judges.max_workers=2",
            "learner.resources={learner_slot: 1}", f"reward_model.workers.resources={on}"]


def start_nodes(env: dict[str, str] | None = None, temp_dir: Path | None = None,
                dashboard_port: int | None = None) -> Any:
    """A head (127.0.0.1) and a second node (127.0.0.2) on this machine, as :data:`NODE_RESOURCES` lays them
    out (with ``dashboard_port``, the head's dashboard and Job API there, for `ouro submit`); stop them with the
    returned :class:`~cluster.nodes.LocalNodes` (a context manager)."""
    from cluster.nodes import LocalNodes

    nodes = LocalNodes(temp_dir=temp_dir, env=dict(env or {}))
    try:
        nodes.start_head(NODE_CPUS["head"], NODE_RESOURCES["head"], dashboard_port=dashboard_port)
        nodes.add_node("node2", "127.0.0.2", NODE_CPUS["node2"], NODE_RESOURCES["node2"])
    except BaseException:
        nodes.stop()
        raise
    return nodes


_NODE_SERVICES = ("IDLE", "DashboardAgent", "RuntimeEnvAgent")
"""Ray process titles on every node that are not an actor: idle workers and the node's agents."""


def actors_on(nodes: Any, name: str) -> list[str]:
    """The Ray actors running on node ``name`` now, by process title (``ReferenceWorker``, …)."""
    import psutil

    from benchmarks.soak import _name

    titles = []
    for pid in nodes.pids(name):
        try:
            title = _name(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        if title.startswith("ray::") and title.removeprefix("ray::") not in _NODE_SERVICES:
            titles.append(title.removeprefix("ray::"))
    return sorted(titles)


def drill_node(config: str | None, overrides: list[str], out: Path, nodes: Any, victim: str | None = None,
               at_round: int = 1, env: dict[str, str] | None = None, timeout_s: float = 900.0,
               submit_to: str | None = None) -> dict[str, Any]:
    """An `ouro run` child process on ``nodes`` (``overrides`` join it, :func:`node_overrides`), or with
    ``submit_to`` (the head's dashboard URL) the same run as a Ray Job, `ouro submit … --follow` (then
    ``overrides`` leave ``cluster.address`` out: the job joins the cluster it runs on). With ``victim``, that
    node is lost when round ``at_round`` starts (``kill -9`` of its raylet and every worker it started).
    ``{"history", "seconds", "killed_at", "lost_actors", "log"}``: the actors that were on the lost node, the
    client's output. A run that takes longer than ``timeout_s`` is killed and raises."""
    import subprocess

    done, fired, errors, lost = threading.Event(), [], [], []

    def lose() -> None:
        lost.extend(actors_on(nodes, victim))
        nodes.kill(victim)

    log_path = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        command = ["run"] if submit_to is None else ["submit", "--follow", "--address", submit_to]
        child = _ouro([*command, *([config] if config else []), *overrides, "--out", str(out)], log,
                      {**nodes.client_env(), **(env or {})})
        watcher = _when_round_starts(out, at_round, lose, done, fired, errors) if victim else None
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise TimeoutError(f"the node drill's run took over {timeout_s:g} s and was killed; its log: {log_path}")
        finally:
            done.set()
    seconds = time.perf_counter() - start
    if watcher is not None:
        watcher.join(5)
    if errors:
        raise RuntimeError(f"the node drill could not lose node {victim!r}: {errors[0]!r}") from errors[0]
    if child.returncode != 0 or (victim and not fired):
        raise RuntimeError(f"the node drill failed (exit {child.returncode}, node lost: {bool(fired)}); its log: "
                           f"{log_path}")
    return {"history": _history(out), "seconds": seconds, "killed_at": fired[0] if fired else None,
            "lost_actors": lost, "log": log_path.read_text()}


# --- the checks ------------------------------------------------------------------------------------

def exactly_once(run_path: Path, rounds: int, n: int) -> dict[str, int]:
    """Per round, every prompt of the round's prompts has its ``n`` candidates once, one reward each and one
    score row per (candidate, teacher): ``{"lost": …, "duplicated": …}`` over the run."""
    import pyarrow.parquet as pq

    lost = duplicated = 0
    for r in range(rounds):
        d = run_path / f"round_{r:03d}"
        prompts = pq.read_table(next(p for p in (d / "labyrinth.parquet", d / "prompts.parquet") if p.is_file()))
        want = {(p, f"c{k}") for p in prompts.column("prompt_id").to_pylist() for k in range(n)}
        for name, per in (("candidates", None), ("rewards", None), ("scores", "teacher")):
            table = pq.read_table(d / f"{name}.parquet")
            keys = list(zip(table.column("prompt_id").to_pylist(), table.column("candidate_id").to_pylist()))
            groups = table.column(per).to_pylist() if per else [None] * len(keys)
            for teacher in set(groups):
                mine = [k for k, g in zip(keys, groups) if g == teacher]
                duplicated += len(mine) - len(set(mine))
                lost += len(want - set(mine))
    return {"lost": lost, "duplicated": duplicated}


def metric_differences(clean: list[dict], drilled: list[dict]) -> list[str]:
    """The metrics (round, key) where the drilled run differs from the clean one, wall times, rates and
    restart counters aside (:data:`VOLATILE`)."""
    diffs = []
    for a, b in zip(clean, drilled):
        for key in sorted(set(a) | set(b)):
            if any(v in key for v in VOLATILE):
                continue
            if a.get(key) != b.get(key):
                diffs.append(f"round {a.get('round')}: {key} {a.get(key)!r} != {b.get(key)!r}")
    if len(clean) != len(drilled):
        diffs.append(f"{len(clean)} rounds measured clean, {len(drilled)} drilled")
    return diffs


def check(fault: str, clean: dict, drilled: dict, run_path: Path, rounds: int, n: int) -> dict[str, Any]:
    """One row of the drill table."""
    counts = exactly_once(run_path, rounds, n)
    diffs = metric_differences(clean["history"], drilled["history"])
    restarts = max((m.get("update_learner_restarts", 0.0) for m in drilled["history"]), default=0.0)
    return {"fault": fault, "completed": len(drilled["history"]) == rounds + 1, **counts,
            "metrics_equal": not diffs, "differences": diffs[:5],
            "recover_s": round(drilled["seconds"] - clean["seconds"], 1), "learner_restarts": restarts}


def _node_row(config: str, overrides: list[str], out: Path, rounds: int, n: int) -> dict[str, Any]:
    """The node drill's row: a clean run and a drilled one on the same two nodes."""
    from cluster.nodes import free_port

    with start_nodes() as nodes:
        joined = [*overrides, f"cluster.serve_port={free_port()}", *node_overrides(nodes.address)]
        clean = drill_node(config, joined, out / "node-clean", nodes)
        drilled = drill_node(config, joined, out / "node", nodes, victim="node2")
    return {**check("node", clean, drilled, out / "node", rounds, n), "lost_actors": drilled["lost_actors"]}


# --- the suite -------------------------------------------------------------------------------------

def run(ctx: Context) -> dict:
    """Every fault once against one clean run (``--quick``: the in-process faults all at once)."""
    repo = Path(__file__).resolve().parents[1]
    config = str(repo / "configs/tiny.yaml")
    overrides = [*DRILL, f"cluster.namespace={ctx.namespace}"]
    n, rounds = 2, 2
    rows = []
    with ray_cluster(ctx):
        clean = drill_in_process(config, overrides, ctx.out / "clean")
        groups = [IN_PROCESS] if ctx.quick else [(f,) for f in IN_PROCESS]
        for faults in groups:
            name = " + ".join(faults)
            path = ctx.out / name.replace(" ", "-").replace("+", "and")
            drilled = drill_in_process(config, overrides, path, faults)
            rows.append(check(name, clean, drilled, path, rounds, n))
    if not ctx.quick:
        driver_overrides = [o for o in overrides if not o.startswith("cluster.namespace")]
        clean_child = drill_driver(config, driver_overrides, ctx.out / "driver-clean", at_round=None)
        drilled = drill_driver(config, driver_overrides, ctx.out / "driver", at_round=1)
        rows.append(check("driver", clean_child, drilled, ctx.out / "driver", rounds, n))
        rows.append(_node_row(config, driver_overrides, ctx.out, rounds, n))
    (ctx.out / "faults.json").write_text(json.dumps(rows, indent=2))
    whole = sum(r["completed"] and r["lost"] == 0 and r["duplicated"] == 0 and r["metrics_equal"] for r in rows)
    return section(SUITE, ratio_name="drills that came through whole (completed, nothing lost or duplicated, "
                   "metrics equal to the clean run's)", ratio={"median": whole / len(rows), "min": whole / len(rows),
                                                               "max": whole / len(rows), "n": len(rows)},
                   absolute={"drills": rows, "clean_seconds": round(clean["seconds"], 1)},
                   params={"overrides": overrides, "faults": [r["fault"] for r in rows]}, goal="1.0", better="higher")
