"""``ouro chat``: stage 1, a human talks with the current policy; dialogues are appended to a dialogs shard."""

from __future__ import annotations

import argparse
import sys

from ouro_ray.cli.common import EXIT_BAD_CONFIG, add_config_args, model_arg
from ouro_ray.stages.dialogue import RUN_CHAT_SHARD, ChatPolicy, ChatUsageError, chat, resolve_out, stdin_reader


def cmd_chat(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config

    cfg = load_config(args.config, args.args)
    try:
        model = model_arg(args.model, cfg)
        model_dir, out = model.model_dir, resolve_out(args.out, model.run_dir)
        policy = ChatPolicy(model_dir, cfg.rollout.sampling, cfg.seed, cfg.rollout.dtype)
    except ChatUsageError as exc:
        print(f"ouro chat: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    interactive = sys.stdin.isatty()
    if interactive:
        import importlib.util

        if importlib.util.find_spec("readline") is not None:  # line editing and history for input()
            importlib.import_module("readline")

        print(f"chatting with {model_dir}; dialogues go to {out}; /help lists the commands", file=sys.stderr)
    try:
        chat(policy.reply, out, stdin_reader(interactive))
    except KeyboardInterrupt:  # while the policy was answering; the dialogue so far is saved
        return 130
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("chat", help="stage 1: talk with the current policy; dialogues are appended to a dialogs shard")
    c.add_argument("--model", required=True,
                   help="an `ouro run` directory (its current policy), a Hugging Face model directory or 'tiny-world'")
    c.add_argument("--out", help="dialogs shard to append to, .jsonl or .parquet "
                   f"(default for a run directory: RUN_DIR/{RUN_CHAT_SHARD})")
    add_config_args(c, "rollout.sampling.*, seed; world.* for tiny-world", "rollout.sampling.temperature=0.7")
    c.set_defaults(func=cmd_chat)
