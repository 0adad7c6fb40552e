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
    from ouro_ray.serving import deploy_completions

    no_plain_args("serve", args.args, "pass the model with --model")
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
    served = deploy_completions(model_dir, name=args.name or _served_name(args.model, model_dir),
                                route_prefix=args.route_prefix, num_replicas=args.replicas, num_cpus=args.num_cpus,
                                num_gpus=args.num_gpus, truncate_prompts=args.truncate_prompts)
    url = served.base_url(serve_info)
    print(f"serving model {served.model!r} at {url} (POST {url}/v1/completions, POST /v1/chat/completions, "
          "GET /v1/models, GET /health)", flush=True)
    if args.detach:
        print(f"detached: app {served.app_name!r} stays up until serve.delete({served.app_name!r}) "
              "or `serve shutdown` (which stops every app)")
        return 0
    _wait_for_interrupt()
    served.delete()
    print(f"deleted app {served.app_name!r}")
    return 0


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
    v.add_argument("--detach", action="store_true",
                   help="return once deployed; the app stays up on the running cluster")
    v.set_defaults(func=cmd_serve)


