"""``ouro compare``: the four arms (SFT, RLHF, RLAIF, Ouroboros) on the same compute, graded independently."""

from __future__ import annotations

import argparse
from pathlib import Path

from ouro_ray.cli.common import split_args


def cmd_compare(args: argparse.Namespace) -> int:
    from ouro_ray.compare.run import compare

    config_path, overrides = split_args(args.args, "config file")
    compare(config_path, overrides, [a.strip() for a in args.arms.split(",") if a.strip()], args.seeds,
            Path(args.out), args.quick, args.pairs_per_round)
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("compare", help="SFT / RLHF / RLAIF / Ouroboros on the same compute, graded by ground truth",
                       description="Runs each arm from the same initial policy with the same config and seeds (each "
                                   "an `ouro run` into OUT/<arm>/seed_<s>, resumable), then writes OUT/compare.md, "
                                   "compare.csv, compare.json and compare.png: the independent grade of each arm's "
                                   "final policy, means over seeds with 95 % intervals, beside the paper's table.")
    c.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]",
                   help="base config (e.g. configs/tiny.yaml) and overrides every arm gets")
    c.add_argument("--arms", default="sft,rlhf,rlaif,ouroboros", help="comma-separated arms (default: all four)")
    c.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    c.add_argument("--out", default="runs/compare", help="directory of the runs and the table (default runs/compare)")
    c.add_argument("--quick", action="store_true", help="one short round per arm: a wiring check, not figures")
    c.add_argument("--pairs-per-round", type=int, default=None,
                   help="RLHF: pairs the simulated human labels per round (default: loop.prompts_per_round)")
    c.set_defaults(func=cmd_compare)
