"""``ouro distill`` and ``ouro labyrinth``: stages 2 and 3 alone on shard files, with the loop's own code.

Inputs are read as ``ouro validate`` reads them (bad records listed as ``FILE:LINE`` and refused);
outputs are written atomically in the format the file name says (``.jsonl`` or ``.parquet``).
"""

from __future__ import annotations

import argparse

from ouro_ray.cli.common import model_arg, read_input


def _writer(cfg):
    """The AI summariser: the initial policy, greedy, through the transformers engine."""
    from ouro_ray.judges.constitution import LocalWriter
    from ouro_ray.models.device import pick_device
    from ouro_ray.models.load import load_causal_lm
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    model_dir = model_arg(cfg.model.path, cfg, key="model.path").model_dir
    model, tokenizer = load_causal_lm(model_dir, device=pick_device())
    return LocalWriter(TransformersBackend(model, tokenizer), tokenizer, cfg.distill.max_new_tokens)


def cmd_distill(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.data import write_shard
    from ouro_ray.stages.distill import distill

    cfg = load_config(args.config, args.args)
    overrides = read_input(cfg.distill.summaries_override, "summaries") if cfg.distill.summaries_override else None
    dialogs = read_input(args.dialogs, "dialogs")  # bad input fails before the summariser loads
    writer = _writer(cfg) if cfg.distill.use_ai else None
    result = distill(dialogs, cfg.distill, writer, overrides)
    write_shard(result.summaries, args.out, "summaries")
    print(f"{args.out}: {result.summaries.num_rows} summaries; " + ", ".join(f"{k} {v}" for k, v in result.stats.items()))
    return 0


def cmd_labyrinth(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.data import write_shard
    from ouro_ray.stages.labyrinth import labyrinth

    cfg = load_config(args.config, args.args)
    table = labyrinth(read_input(args.summaries, "summaries"), read_input(args.dialogs, "dialogs"), cfg.labyrinth, cfg.seed)
    write_shard(table, args.out, "labyrinth")
    kinds = table.column("kind").value_counts().to_pylist()
    print(f"{args.out}: {table.num_rows} prompts (" + ", ".join(f"{k['values']} {k['counts']}" for k in kinds) + ")")
    return 0


def add_parsers(sub) -> None:
    d = sub.add_parser("distill", help="stage 2: dialogues → summaries {facts, logic, persona}")
    d.add_argument("dialogs", help="a dialogs shard (JSONL or Parquet)")
    d.add_argument("--out", required=True, help="summaries shard to write (.jsonl or .parquet)")
    d.add_argument("--config", help="YAML config (distill.*, model.path for the AI summariser)")
    d.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help="config overrides, e.g. distill.use_ai=false")
    d.set_defaults(func=cmd_distill)

    lab = sub.add_parser("labyrinth", help="stage 3: summaries → rephrase / adversarial / contrastive prompts")
    lab.add_argument("summaries", help="a summaries shard (JSONL or Parquet)")
    lab.add_argument("--dialogs", required=True, help="the dialogs shard the summaries came from")
    lab.add_argument("--out", required=True, help="labyrinth shard to write (.jsonl or .parquet)")
    lab.add_argument("--config", help="YAML config (labyrinth.*, seed)")
    lab.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help="config overrides, e.g. labyrinth.rephrase=3")
    lab.set_defaults(func=cmd_labyrinth)
