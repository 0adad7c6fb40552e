"""What every ``ouro`` command shares: exit codes, argument helpers, reading input shards, the model
a command is given, and joining the Ray cluster. Command modules import from here, never from each other."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Sequence

from ouro_ray.config import ConfigError

EXIT_BAD_DATA = 1
"""Bad input data (a shard with bad records, a missing file)."""
EXIT_BAD_CONFIG = 2
"""A bad config, override or argument (usage)."""


class UsageError(ConfigError):
    """Arguments that do not fit together; exits 2, as a bad config does."""

    def __init__(self, message: str):
        self.problems = [message]
        ValueError.__init__(self, message)


def say(message: str) -> None:
    """Progress for the person at the terminal, on stderr (stdout stays the command's output)."""
    print(message, file=sys.stderr, flush=True)


def split_args(tokens: Sequence[str], what: str) -> tuple[str | None, list[str]]:
    """Positional tokens → (the one plain argument or None, the ``key=value`` overrides)."""
    plain = [t for t in tokens if "=" not in t]
    if len(plain) > 1:
        raise SystemExit(f"ouro: expected at most one {what} and key=value overrides, got {plain}")
    return (plain[0] if plain else None), [t for t in tokens if "=" in t]


def no_plain_args(command: str, tokens: Sequence[str], how: str) -> None:
    """Refuse positional arguments where a command takes only ``key=value`` overrides."""
    plain = [t for t in tokens if "=" not in t]
    if plain:
        raise SystemExit(f"ouro {command}: unexpected argument(s) {plain}: {how}, config overrides as key=value")


def number(kind: type, *, minimum: float = 0, strict: bool = True, maximum: float | None = None):
    """An argparse type: a ``kind`` above ``minimum`` (at or above unless ``strict``), refused with the rule."""
    rule = f"{'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:g}" if maximum is not None else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < minimum or (strict and value == minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value
    return parse


def add_config_args(p: argparse.ArgumentParser, sections: str, example: str) -> None:
    """``--config`` and the ``KEY=VALUE`` overrides, as every config-reading command takes them."""
    p.add_argument("--config", help=f"YAML config ({sections})")
    p.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help=f"config overrides, e.g. {example}")


def read_input(path: str, kind: str):
    """A shard read as ``ouro validate`` reads it; 'prompts' also takes a labyrinth shard, as ``data.prompts`` does."""
    from ouro_ray.data import read_shard
    from ouro_ray.stages.sources import read_prompts

    try:
        return read_prompts(path) if kind == "prompts" else read_shard(path, kind).table
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


def check_format(*paths: str | Path | None) -> None:
    """Refuse an output name without a shard suffix now, before any model loads."""
    from ouro_ray.data.shards import shard_format

    for path in paths:
        if path is not None:
            shard_format(path)


def model_arg(spec: str, cfg, key: str = "--model"):
    """The :class:`~ouro_ray.models.resolve.ResolvedModel` a command's model argument names (tiny-world builds
    report progress on stderr); a spec that names no model fails with the fix (exit 2)."""
    from ouro_ray.models.resolve import resolve_model

    return resolve_model(spec, cfg.world, cfg.seed, progress=say, key=key)


def in_process(role_cfg):
    """A role's config with ``workers.num_workers = 0``: the role runs in this process."""
    return dataclasses.replace(role_cfg, workers=dataclasses.replace(role_cfg.workers, num_workers=0))


def connect(cfg):
    """Join or start the Ray cluster a command needs (sizes only for a cluster this starts), as ``ouro run``."""
    from cluster.local import connect as connect_cluster

    c = cfg.cluster
    joining = c.address or os.environ.get("RAY_ADDRESS")
    sizes = {} if joining else {"num_cpus": c.num_cpus, "num_gpus": c.num_gpus, "object_store_mb": c.object_store_mb}
    info = connect_cluster(c.address, dashboard=c.dashboard, namespace=c.namespace, **sizes)
    say(info.describe())
    return info
