"""``ouro submit``: an ``ouro run`` as a Ray Job on a running cluster; its status, logs and stop.

The config and overrides are validated here first (a bad key fails before anything is uploaded); the job
runs ``python -m ouro_ray.cli run CONFIG … --out RUN_DIR`` with this checkout as its ``working_dir``, on the
cluster's Python (this project's image), or with ``--pip`` on the project's dependencies as well.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
import time
from pathlib import Path

from ouro_ray.cli.common import UsageError, say, split_args

EXIT_JOB_FAILED = 1
"""The cluster refused or failed the request, or a followed job ended other than SUCCEEDED."""
STOP_WAIT_S = 60.0


def cmd_submit(args: argparse.Namespace) -> int:
    from cluster.jobs import JobError

    modes = [m for m in ("status", "logs", "stop") if getattr(args, m)]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} do not go together; fix: one of --status/--logs/--stop JOB")
    if modes and (args.args or args.pip or args.env or args.out or args.job_id):
        raise UsageError(f"--{modes[0]} JOB takes only --address (and --follow for --logs); fix: drop the config, "
                         "overrides, --out, --env, --pip and --job-id")
    if args.follow and modes and modes[0] != "logs":
        raise UsageError("--follow goes with --logs JOB or with a submission; fix: drop --follow")
    try:
        if modes:
            return {"status": show_status, "logs": show_logs, "stop": stop}[modes[0]](args)
        return submit(args)
    except JobError as exc:
        print(f"ouro submit: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED


def _client(args: argparse.Namespace):
    from cluster.jobs import JobClient

    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS", "")
    if not address.startswith(("http://", "https://")):
        raise UsageError("ouro submit needs the cluster's dashboard address; fix: pass --address http://HEAD:8265 "
                         "(or set RAY_API_SERVER_ADDRESS)")
    return JobClient(address)


def joining_overrides(cfg) -> list[str]:
    """Overrides that make a config join the job's cluster: a local cluster's sizes and another address go.

    ``configs/tiny.yaml`` sizes the cluster ``ouro run`` starts on one machine (``cluster.num_cpus: 7``); a
    submitted run joins the cluster it is submitted to, where those values mean nothing."""
    c = cfg.cluster
    sized = [f"cluster.{key}=null" for key, value in (("num_cpus", c.num_cpus), ("num_gpus", c.num_gpus),
                                                      ("object_store_mb", c.object_store_mb)) if value is not None]
    return sized + (["cluster.address=null"] if c.address not in (None, "auto") else [])


def job_entrypoint(config: str | None, overrides: list[str], out: str) -> str:
    """The job's shell command: ``ouro run`` through ``python -m`` (the job's env may have no console script)."""
    return shlex.join(["python", "-m", "ouro_ray.cli", "run", *([config] if config else []), *overrides, "--out", out])


def config_in_checkout(config: str, root: Path) -> str:
    """CONFIG as a path inside the uploaded checkout (the job's working directory)."""
    path = Path(config).expanduser().resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"config {config}: it is outside the checkout {root}, which is what the job gets as its "
                         "working_dir; fix: copy it under the checkout (e.g. configs/)") from None


def env_pairs(pairs: list[str]) -> dict[str, str]:
    bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0]]
    if bad:
        raise UsageError(f"--env {bad[0]!r}: expected KEY=VALUE; fix: e.g. --env OURO_CACHE=/shared/worlds")
    return dict(p.split("=", 1) for p in pairs)


def submit(args: argparse.Namespace) -> int:
    from cluster.jobs import project_root, runtime_env
    from ouro_ray.config import load_config
    from ouro_ray.loop.run import check_run_config

    config, overrides = split_args(args.args, "config file")
    cfg = load_config(config, overrides)  # a bad key or value fails here, before anything is uploaded
    joining = joining_overrides(cfg)
    if joining:
        say(f"the job joins the cluster it is submitted to: {' '.join(joining)} added (the config sizes or names "
            "a cluster of its own)")
        overrides = [*overrides, *joining]
        cfg = load_config(config, overrides)
    check_run_config(cfg)
    root = project_root()
    config_rel = config_in_checkout(config, root) if config else None
    env = runtime_env(root, env_pairs(args.env or []), args.pip)
    client = _client(args)
    job = args.job_id or f"ouro-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    out = args.out or f"~/ouro-runs/{job}"
    metadata = {"ouro_run_dir": out, "ouro_config": config_rel or "", "ouro_overrides": shlex.join(overrides)}
    job = client.submit(job_entrypoint(config_rel, overrides, out), env, job, metadata)
    print(job)
    a = f"--address {client.address}"
    say(f"submitted {job} to {client.address}: ouro run {config_rel or '(defaults)'} {shlex.join(overrides)}".rstrip())
    say(f"run directory (on the cluster, on the node that runs the job's driver, the head by default): {out}")
    say(f"follow the logs: ouro submit --logs {job} --follow {a}")
    say(f"status / stop:   ouro submit --status {job} {a}  /  ouro submit --stop {job} {a}")
    say(f"dashboard:       {client.address}/#/jobs/{job}")
    if not args.follow:
        return 0
    status = client.follow(job, _write)
    say(f"{job}: {status}")
    return 0 if status == "SUCCEEDED" else EXIT_JOB_FAILED


def _write(chunk: str) -> None:
    sys.stdout.write(chunk)
    sys.stdout.flush()


def show_status(args: argparse.Namespace) -> int:
    info = _client(args).info(args.status)
    print(f"{args.status} {info.status.value}")
    meta = info.metadata or {}
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.start_time / 1000)) if info.start_time else "-"
    ended = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.end_time / 1000)) if info.end_time else "-"
    print(f"  message: {info.message}")
    print(f"  started: {started}  ended: {ended}")
    print(f"  entrypoint: {info.entrypoint}")
    if meta.get("ouro_run_dir"):
        print(f"  run directory (on the cluster): {meta['ouro_run_dir']}")
    return 0


def show_logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if not args.follow:
        _write(client.logs(args.logs))
        return 0
    status = client.follow(args.logs, _write)
    say(f"{args.logs}: {status}")
    return 0 if status == "SUCCEEDED" else EXIT_JOB_FAILED


def stop(args: argparse.Namespace) -> int:
    client = _client(args)
    if not client.stop(args.stop):
        say(f"{args.stop} had already ended: {client.info(args.stop).status.value}")
        return 0
    status = client.wait(args.stop, STOP_WAIT_S)
    say(f"{args.stop}: {status}" + ("" if status == "STOPPED" else f" (still not stopped after {STOP_WAIT_S:g} s)"))
    return 0 if status == "STOPPED" else EXIT_JOB_FAILED


def add_parsers(sub) -> None:
    s = sub.add_parser("submit", help="run `ouro run` as a Ray Job on a running cluster; its status, logs and stop",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]",
                   help="YAML config inside this checkout (e.g. configs/tiny.yaml) and overrides such as rounds=4")
    s.add_argument("--address", help="the cluster's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                                     "else $RAY_ADDRESS when it is an http address); the token comes from "
                                     "$RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token")
    s.add_argument("--out", metavar="RUN_DIR",
                   help="the run directory on the cluster (default: ~/ouro-runs/JOB on the driver's node)")
    s.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="an environment variable for the job and its actors (repeatable), e.g. OURO_CACHE=/shared/worlds")
    s.add_argument("--pip", action="store_true",
                   help="install the project's dependencies into the job's runtime env (the cluster needs "
                        "`virtualenv`); default off: the cluster runs this project's image, which has them")
    s.add_argument("--job-id", help="the submission id (default: ouro-<date-time>-<4 hex>)")
    s.add_argument("--follow", action="store_true",
                   help="stream the logs until the job ends; exit 0 only if it SUCCEEDED")
    jobs = s.add_argument_group("an existing job")
    jobs.add_argument("--status", metavar="JOB", help="print the job's status, message, times and run directory")
    jobs.add_argument("--logs", metavar="JOB", help="print the job's logs so far (--follow: until it ends)")
    jobs.add_argument("--stop", metavar="JOB", help=f"stop the job and wait (up to {STOP_WAIT_S:g} s) until it has")
    s.set_defaults(func=cmd_submit)
