"""``ouro serve``: a policy as an OpenAI-compatible endpoint on Ray Serve (judge-as-a-service)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from ouro_ray.cli.common import EXIT_BAD_CONFIG, model_arg, no_plain_args, number


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a policy as an OpenAI-compatible completions and chat endpoint on Ray Serve (a judge-as-a-service)."""
    from cluster import connect
    from cluster.serving import ensure_serve
    from ouro_ray.config import load_config
    from ouro_ray.serving import deploy_completions, resolve_api_key
    from ouro_ray.serving.auth import read_api_key

    no_plain_args("serve", args.args, "pass the model with --model")
    try:
        given_key = None if args.api_key_env is None else read_api_key(args.api_key_env)
    except ValueError as exc:  # before any cluster starts
        print(f"ouro serve: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    cfg = load_config(args.config, args.args)
    joining = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    if args.detach and not joining:
        print("ouro serve: --detach leaves the app on a running cluster, but none is named, and a cluster started "
              "by this command stops when it exits; fix: start one (`ray start --head`) and pass "
              "cluster.address=auto, or drop --detach", file=sys.stderr)
        return EXIT_BAD_CONFIG
    model_dir = model_arg(args.model, cfg).model_dir  # a spec that names no model: exit 2 with the fix
    c = cfg.cluster
    print(connect(c.address, num_cpus=c.num_cpus, num_gpus=c.num_gpus, object_store_mb=c.object_store_mb,
                  dashboard=c.dashboard, namespace=c.namespace).describe(), flush=True)
    host = args.host if args.host is not None else c.serve_host
    port = args.port if args.port is not None else c.serve_port
    serve_info = ensure_serve(host, port)  # before deploying: serve.run would start Serve on :8000
    # The proxy's real address decides: a Serve already running on 0.0.0.0 exposes this app there too.
    api_key = resolve_api_key(serve_info.host, given_key)
    served = deploy_completions(model_dir, name=args.name or _served_name(args.model, model_dir),
                                route_prefix=args.route_prefix, num_replicas=args.replicas, num_cpus=args.num_cpus,
                                num_gpus=args.num_gpus, truncate_prompts=args.truncate_prompts, limits=_limits(args),
                                api_key=api_key.value if api_key else None)
    url = served.base_url(serve_info)
    print(f"serving model {served.model!r} at {url} (POST {url}/v1/completions, POST /v1/chat/completions, "
          "GET /v1/models, GET /health)", flush=True)
    _say_auth(serve_info.host, api_key, args.api_key_env)
    if args.detach:
        print(f"detached: app {served.app_name!r} stays up until serve.delete({served.app_name!r}) "
              "or `serve shutdown` (which stops every app)")
        return 0
    _wait_for_interrupt()
    served.delete()
    print(f"deleted app {served.app_name!r}")
    return 0


def _limits(args: argparse.Namespace):
    """The per-request limits the options set."""
    from ouro_ray.serving import ServeLimits

    return ServeLimits(max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens, max_n=args.max_n,
                       max_prompts=args.max_prompts, max_waiting=args.max_waiting,
                       request_timeout_s=args.request_timeout)


def _say_auth(host: str, api_key, api_key_env: str | None) -> None:
    """How clients authenticate; a generated key is printed here, once, and nowhere else."""
    if api_key is None:
        print(f"no API key: the proxy listens on {host} (loopback only); pass --api-key-env VAR to require one",
              flush=True)
    elif api_key.generated:
        print(f"the proxy listens on {host}, beyond loopback, so requests need an API key. Generated key (shown "
              f"once, not stored): {api_key.value}\nclients send 'Authorization: Bearer <key>' (HTTPJudge: "
              "api_key='env:VAR'; openai: api_key=...)", flush=True)
    else:
        print(f"requests need 'Authorization: Bearer <key>' with the key in ${api_key_env}", flush=True)


def _served_name(model: str, model_dir: Path) -> str:
    """The default model name clients send: 'tiny-world', else the model directory's name."""
    from ouro_ray.config import TINY_WORLD

    return TINY_WORLD if model == TINY_WORLD else model_dir.resolve().name


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM (both end in the app's deletion)."""
    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)


def add_parsers(sub) -> None:
    v = sub.add_parser("serve", help="serve a policy as an OpenAI-compatible completions and chat endpoint on Ray "
                       "Serve")
    v.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help="config overrides (world.*, seed, cluster.*)")
    v.add_argument("--model", required=True,
                   help="'tiny-world' (built or cached from the config) or a Hugging Face model directory")
    v.add_argument("--config", help="YAML config whose seed, world and cluster sections to use")
    v.add_argument("--host", help="Serve's HTTP host if this starts Serve (default: cluster.serve_host, 127.0.0.1)")
    v.add_argument("--port", type=number(int, maximum=65535),
                   help="Serve's HTTP port if this starts Serve (default: cluster.serve_port, 8000)")
    v.add_argument("--route-prefix", default="/", help="URL prefix of the endpoint (default: %(default)s)")
    v.add_argument("--name", help="the model name clients send, also the Serve app's name "
                   "(default: tiny-world or the directory's name)")
    v.add_argument("--replicas", type=number(int), default=1, help="number of replicas (default: %(default)s)")
    v.add_argument("--num-cpus", type=number(float), default=1.0, help="CPUs per replica (default: %(default)s)")
    v.add_argument("--num-gpus", type=number(float, strict=False), default=0.0, help="GPUs per replica (default: %(default)s)")
    v.add_argument("--truncate-prompts", action="store_true",
                   help="keep a too-long prompt's last tokens instead of answering 400")
    v.add_argument("--api-key-env", metavar="VAR",
                   help="require 'Authorization: Bearer <key>' with the key in $VAR (default: no key on a loopback "
                   "host; on any other host a key is generated and printed once)")
    _add_limit_args(v)
    v.add_argument("--detach", action="store_true",
                   help="return once deployed; the app stays up on the running cluster")
    v.set_defaults(func=cmd_serve)


def _add_limit_args(v) -> None:
    from ouro_ray.serving.limits import MIB, ServeLimits

    d = ServeLimits()
    v.add_argument("--max-body-bytes", type=number(int), default=d.max_body_bytes,
                   help=f"largest request body in bytes; a bigger one answers 413 unread (default: %(default)s = "
                   f"{d.max_body_bytes / MIB:g} MiB)")
    v.add_argument("--max-tokens", type=number(int), default=d.max_tokens,
                   help="most tokens a choice may generate; more answers 400 (default: %(default)s; the model's "
                   "context may allow fewer)")
    v.add_argument("--max-n", type=number(int), default=d.max_n,
                   help="most choices per prompt (n); more answers 400 (default: %(default)s)")
    v.add_argument("--max-prompts", type=number(int), default=d.max_prompts,
                   help="most prompts in one completions request; more answers 400 (default: %(default)s)")
    v.add_argument("--max-waiting", type=number(int, strict=False), default=d.max_waiting,
                   help="most requests waiting for the model per replica while one generates; one more answers "
                   "429 with Retry-After (default: %(default)s)")
    v.add_argument("--request-timeout", type=number(float), default=d.request_timeout_s, metavar="SECONDS",
                   help="seconds a request may take, reading, waiting and generating; past it, 503 "
                   "(default: %(default)s)")
