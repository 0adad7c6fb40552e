"""The ``ouro`` command line: one sub-command per job, each validating its input before it starts.

One module per command group (:mod:`~ouro_ray.cli.data`, :mod:`~ouro_ray.cli.run`, :mod:`~ouro_ray.cli.stages`,
:mod:`~ouro_ray.cli.chat`, :mod:`~ouro_ray.cli.train`, :mod:`~ouro_ray.cli.eval`, :mod:`~ouro_ray.cli.serve`,
:mod:`~ouro_ray.cli.compare`, :mod:`~ouro_ray.cli.studio`, :mod:`~ouro_ray.cli.submit`),
each with an ``add_parsers(sub)``; what they share is in :mod:`~ouro_ray.cli.common`. Packages outside
the core (``benchmarks``) register their commands through the ``ouro_ray.commands`` entry point group.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Sequence

from ouro_ray import __version__
from ouro_ray.cli import chat, compare, data, eval, run, serve, stages, studio, submit, train
from ouro_ray.cli.common import EXIT_BAD_CONFIG, EXIT_BAD_DATA

COMMAND_GROUPS = (data, serve, run, submit, compare, stages, chat, studio, train, eval)
PLUGIN_GROUP = "ouro_ray.commands"
"""Entry points in this group are ``add_parsers(sub)`` functions of commands packaged outside the core."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ouro", description="ouro-ray: the Ouroboros alignment loop on Ray.")
    p.add_argument("--version", action="version", version=f"ouro-ray {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        plugin.load()(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ouro_ray.config import ConfigError
    from ouro_ray.models.resolve import ModelNotFoundError

    parser = build_parser()
    # argparse gives a positional list one slot, so `--config X k=v` would leave k=v unparsed:
    # overrides after options join the positionals; anything else stays an error.
    args, extra = parser.parse_known_args(argv)
    stray = [t for t in extra if t.startswith("-") or "=" not in t or not hasattr(args, "args")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.args = [*args.args, *extra]
    try:
        return args.func(args)
    except (ConfigError, ModelNotFoundError) as exc:
        print(f"ouro {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except ValueError as exc:
        print(f"ouro {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
