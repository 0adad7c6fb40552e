"""``ouro run``: the Ouroboros loop, ``rounds`` rounds of the seven stages on Ray, into a run directory."""

from __future__ import annotations

import argparse

from ouro_ray.cli.common import split_args


def cmd_run(args: argparse.Namespace) -> int:
    from ouro_ray.loop.run import main as run_main

    config_path, overrides = split_args(args.args, "config file")
    return run_main(config_path, overrides, args.out, args.resume, args.address)


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="the Ouroboros loop: `rounds` rounds of the seven stages on Ray, into a run directory")
    r.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]",
                   help="YAML config (e.g. configs/tiny.yaml) and overrides such as rounds=4")
    r.add_argument("--out", help="run directory to create (default: runs/<date-time>)")
    r.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run after its last finished round (its config.yaml; overrides apply on top)")
    r.add_argument("--address", help="join this Ray cluster (default: cluster.address, $RAY_ADDRESS, else start one)")
    r.set_defaults(func=cmd_run)


