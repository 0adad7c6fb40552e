"""``ouro validate``, ``ouro schema``, ``ouro config`` and ``ouro tiny-world``: data, config and the tiny world."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import yaml

from ouro_ray.cli.common import EXIT_BAD_CONFIG, EXIT_BAD_DATA, split_args

if TYPE_CHECKING:
    from ouro_ray.data import ShardSpec


def cmd_validate(args: argparse.Namespace) -> int:
    from ouro_ray.data import infer_kind, scan_shard

    status = 0
    for path in args.files:
        try:
            kind = args.kind or infer_kind(path)
            good, bad = scan_shard(path, kind)
            n_good = good.num_rows
        except (ValueError, FileNotFoundError) as exc:
            print(f"ouro validate: {exc}", file=sys.stderr)
            status = EXIT_BAD_DATA
            continue
        for record in bad:
            for line in record.lines():
                print(line, file=sys.stderr)
        if bad:
            print(f"{path}: {len(bad)} bad of {n_good + len(bad)} {kind} records", file=sys.stderr)
            status = EXIT_BAD_DATA
        else:
            print(f"{path}: {n_good} {kind} records OK")
    return status


def cmd_config(args: argparse.Namespace) -> int:
    from ouro_ray.config import OuroConfig, explain, load_config, public_dict

    if args.explain:
        for row in explain(OuroConfig):
            rule = f" ({row.rule})" if row.rule else ""
            print(f"{row.key}: {row.type_name}{rule} = {row.default!r}\n    {row.doc}")
        return 0
    config_path, overrides = split_args(args.args, "config file")
    cfg = load_config(config_path, overrides)
    if args.placement:
        return _placement(cfg, args.placement)
    print(yaml.safe_dump(public_dict(cfg), sort_keys=False), end="")
    return 0


def _placement(cfg, raycluster: str) -> int:
    """``ouro config --placement``: each role's resource groups packed onto a KubeRay RayCluster's nodes, at the
    start and with every autoscaled role (and worker group) at its most. Needs neither the models nor Ray."""
    from cluster.placement import kuberay_nodes, place, role_requests

    path = Path(raycluster)
    if not path.is_file():
        print(f"ouro config: --placement {raycluster}: no such file; fix: pass a RayCluster YAML such as "
              "cluster/k8s/raycluster.yaml", file=sys.stderr)
        return EXIT_BAD_CONFIG
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") == "RayCluster"]
    if not docs:
        print(f"ouro config: --placement {raycluster}: no RayCluster in it; fix: pass cluster/k8s/raycluster.yaml",
              file=sys.stderr)
        return EXIT_BAD_CONFIG
    status = 0
    for at, scale in (("start", "replicas"), ("max", "maxReplicas")):
        try:
            nodes = kuberay_nodes(docs[0], scale)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            print(f"ouro config: --placement {raycluster}: its RayCluster lacks or misspells {exc} (a group's "
                  "template.spec.containers[0] with resources.limits, rayStartParams, resources); fix: compare it "
                  "with cluster/k8s/raycluster.yaml", file=sys.stderr)
            return EXIT_BAD_CONFIG
        where, problems = place(role_requests(cfg, gpu_cluster=any(n.resources.get("GPU") for n in nodes), at=at),
                                nodes)
        print(f"{at} ({len(nodes)} nodes, worker groups at {scale}):")
        for role, names in where.items():
            print(f"  {role:<26} {', '.join(names)}")
        for problem in problems:
            print(f"ouro config: {problem}", file=sys.stderr)
            status = EXIT_BAD_CONFIG
    return status


def cmd_tiny_world(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.seeding import seed_everything
    from ouro_ray.world import build_tiny_world

    out_dir, overrides = split_args(args.args, "OUT_DIR")
    cfg = load_config(args.config, overrides)
    seed_everything(cfg.seed)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    manifest = build_tiny_world(cfg.world, cfg.seed, out_dir=Path(out_dir) if out_dir else None, progress=say)
    print(manifest.describe())
    if cfg.world.judge.enabled:
        from ouro_ray.world_judge.build import build_world_judge

        print(f"  judge:     {build_world_judge(cfg.world, cfg.seed, progress=say, world=manifest)}")
    else:
        print("  judge:     none (world.judge.enabled: false)")
    return 0


def schema_markdown(specs: Sequence["ShardSpec"]) -> str:
    """The shard schemas as Markdown tables (the README's data-format section is this output)."""
    bar = "\\|"
    lines: list[str] = []
    for spec in specs:
        key = f" — key `{', '.join(spec.key)}`" if spec.key else ""
        lines += [f"**`{spec.kind}`**{key}: {spec.doc}", "", "| column | Arrow type | shape | meaning |",
                  "|---|---|---|---|"]
        for c in spec.columns:
            arrow = str(c.type).replace("list<item: ", "list<").replace(" not null", "")
            enums = "".join(f" ({p}: {' | '.join(v)})" for p, v in c.choices.items() if p)
            null = " (nullable)" if c.nullable else ""
            meaning = f"{c.meaning}{enums}{null}".replace("|", bar)
            lines.append(f"| `{c.name}` | `{arrow.replace('|', bar)}` | {c.shape} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def cmd_schema(args: argparse.Namespace) -> int:
    from ouro_ray.data import SHARDS, shard_spec

    specs = [shard_spec(args.kind)] if args.kind else list(SHARDS.values())
    if args.markdown:
        print(schema_markdown(specs), end="")
        return 0
    for spec in specs:
        key = f" (key: {', '.join(spec.key)})" if spec.key else ""
        print(f"{spec.kind}{key}: {spec.doc}")
        for c in spec.columns:
            null = ", nullable" if c.nullable else ""
            enums = "".join(f"; {p}: {' | '.join(v)}" for p, v in c.choices.items() if p)
            print(f"  {c.name:<17} {str(c.type):<45} {c.shape:<9} {c.meaning}{null}{enums}")
        print()
    return 0


def add_parsers(sub) -> None:
    v = sub.add_parser("validate", help="check shard files; list each bad record as FILE:LINE: problem")
    v.add_argument("files", nargs="+", metavar="FILE", help="JSONL or Parquet shard files")
    v.add_argument("--kind", help="shard kind (default: from the file name, e.g. dialogs.jsonl)")
    v.set_defaults(func=cmd_validate)

    t = sub.add_parser("tiny-world", help="build (or reuse from cache) the tiny world: corpus, tokenizer, model, and its judge")
    t.add_argument("args", nargs="*", metavar="[OUT_DIR] [KEY=VALUE]",
                   help="output directory (default: the content-hash cache) and config overrides")
    t.add_argument("--config", help="YAML config whose seed and world section to use (default: built-in defaults)")
    t.set_defaults(func=cmd_tiny_world)

    c = sub.add_parser("config", help="print the validated config after overrides, or every field with --explain")
    c.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]", help="YAML config and overrides")
    c.add_argument("--explain", action="store_true", help="list every field: type, rule, default and meaning")
    c.add_argument("--placement", metavar="RAYCLUSTER_YAML", help="instead of the config, check that every role's "
                   "resources fit on the nodes of this KubeRay RayCluster (e.g. cluster/k8s/raycluster.yaml)")
    c.set_defaults(func=cmd_config)

    s = sub.add_parser("schema", help="print the Arrow schema of each shard kind")
    s.add_argument("kind", nargs="?", help="one shard kind (default: all)")
    s.add_argument("--markdown", action="store_true", help="as Markdown tables (the README's data-format section)")
    s.set_defaults(func=cmd_schema)

