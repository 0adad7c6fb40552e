"""The ``ouro`` command line: one sub-command per job, each validating its input before it starts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import yaml

from ouro_ray import __version__

if TYPE_CHECKING:
    from ouro_ray.data import ShardSpec

EXIT_BAD_DATA = 1
EXIT_BAD_CONFIG = 2


def _split_args(tokens: Sequence[str], what: str) -> tuple[str | None, list[str]]:
    """Positional tokens → (the one plain argument or None, the ``key=value`` overrides)."""
    plain = [t for t in tokens if "=" not in t]
    if len(plain) > 1:
        raise SystemExit(f"ouro: expected at most one {what} and key=value overrides, got {plain}")
    return (plain[0] if plain else None), [t for t in tokens if "=" in t]


# ---------------------------------------------------------------- sub-commands


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
    from ouro_ray.config import OuroConfig, explain, load_config, to_dict

    if args.explain:
        for row in explain(OuroConfig):
            rule = f" ({row.rule})" if row.rule else ""
            print(f"{row.key}: {row.type_name}{rule} = {row.default!r}\n    {row.doc}")
        return 0
    config_path, overrides = _split_args(args.args, "config file")
    cfg = load_config(config_path, overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


def cmd_tiny_world(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.seeding import seed_everything
    from ouro_ray.world import build_tiny_world

    out_dir, overrides = _split_args(args.args, "OUT_DIR")
    cfg = load_config(args.config, overrides)
    seed_everything(cfg.seed)
    manifest = build_tiny_world(cfg.world, cfg.seed, out_dir=Path(out_dir) if out_dir else None,
                                progress=lambda msg: print(msg, flush=True))
    print(manifest.describe())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a policy as an OpenAI-compatible completions and chat endpoint on Ray Serve (a judge-as-a-service)."""
    from cluster import connect
    from cluster.serving import ensure_serve
    from ouro_ray.config import load_config
    from ouro_ray.models.load import resolve_model_path
    from ouro_ray.serving import deploy_completions

    _no_plain_args(args.args)
    cfg = load_config(args.config, args.args)
    joining = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    if args.detach and not joining:
        print("ouro serve: --detach leaves the app on a running cluster, but none is named, and a cluster started "
              "by this command stops when it exits; fix: start one (`ray start --head`) and pass "
              "cluster.address=auto, or drop --detach", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        model_dir = resolve_model_path(args.model, cfg.world, cfg.seed, progress=lambda msg: print(msg, flush=True))
    except FileNotFoundError as exc:
        print(f"ouro serve: --model: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
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


def _no_plain_args(tokens: Sequence[str]) -> None:
    plain = [t for t in tokens if "=" not in t]
    if plain:
        raise SystemExit(f"ouro serve: unexpected argument(s) {plain}: pass the model with --model, "
                         "config overrides as key=value")


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


def _number(kind: type, *, minimum: float = 0, strict: bool = True, maximum: float | None = None):
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


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ouro", description="ouro-ray: the Ouroboros alignment loop on Ray.")
    p.add_argument("--version", action="version", version=f"ouro-ray {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check shard files; list each bad record as FILE:LINE: problem")
    v.add_argument("files", nargs="+", metavar="FILE", help="JSONL or Parquet shard files")
    v.add_argument("--kind", help="shard kind (default: from the file name, e.g. dialogs.jsonl)")
    v.set_defaults(func=cmd_validate)

    t = sub.add_parser("tiny-world", help="build (or reuse from cache) the tiny world: corpus, tokenizer, model")
    t.add_argument("args", nargs="*", metavar="[OUT_DIR] [KEY=VALUE]",
                   help="output directory (default: the content-hash cache) and config overrides")
    t.add_argument("--config", help="YAML config whose seed and world section to use (default: built-in defaults)")
    t.set_defaults(func=cmd_tiny_world)

    c = sub.add_parser("config", help="print the validated config after overrides, or every field with --explain")
    c.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]", help="YAML config and overrides")
    c.add_argument("--explain", action="store_true", help="list every field: type, rule, default and meaning")
    c.set_defaults(func=cmd_config)

    s = sub.add_parser("schema", help="print the Arrow schema of each shard kind")
    s.add_argument("kind", nargs="?", help="one shard kind (default: all)")
    s.add_argument("--markdown", action="store_true", help="as Markdown tables (the README's data-format section)")
    s.set_defaults(func=cmd_schema)

    _add_serve_parser(sub)
    _add_run_parser(sub)
    from ouro_ray.cli_stages import add_stage_parsers

    add_stage_parsers(sub)
    from ouro_ray.chat import add_chat_parser

    add_chat_parser(sub)
    from ouro_ray.cli_train import add_loop_stage_parsers

    add_loop_stage_parsers(sub)
    from ouro_ray.eval.cli import add_eval_parser

    add_eval_parser(sub)
    from ouro_ray.eval.judge_eval import add_judge_eval_parser

    add_judge_eval_parser(sub)
    from benchmarks.cli import add_bench_parser

    add_bench_parser(sub)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from ouro_ray.loop.run import main as run_main

    config_path, overrides = _split_args(args.args, "config file")
    return run_main(config_path, overrides, args.out, args.resume, args.address)


def _add_run_parser(sub) -> None:
    r = sub.add_parser("run", help="the Ouroboros loop: `rounds` rounds of the seven stages on Ray, into a run directory")
    r.add_argument("args", nargs="*", metavar="[CONFIG] [KEY=VALUE]",
                   help="YAML config (e.g. configs/tiny.yaml) and overrides such as rounds=4")
    r.add_argument("--out", help="run directory to create (default: runs/<date-time>)")
    r.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run after its last finished round (its config.yaml; overrides apply on top)")
    r.add_argument("--address", help="join this Ray cluster (default: cluster.address, $RAY_ADDRESS, else start one)")
    r.set_defaults(func=cmd_run)


def _add_serve_parser(sub) -> None:
    v = sub.add_parser("serve", help="serve a policy as an OpenAI-compatible completions and chat endpoint on Ray "
                       "Serve")
    v.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help="config overrides (world.*, seed, cluster.*)")
    v.add_argument("--model", required=True,
                   help="'tiny-world' (built or cached from the config) or a Hugging Face model directory")
    v.add_argument("--config", help="YAML config whose seed, world and cluster sections to use")
    v.add_argument("--host", help="Serve's HTTP host if this starts Serve (default: cluster.serve_host, 127.0.0.1)")
    v.add_argument("--port", type=_number(int, maximum=65535),
                   help="Serve's HTTP port if this starts Serve (default: cluster.serve_port, 8000)")
    v.add_argument("--route-prefix", default="/", help="URL prefix of the endpoint (default: %(default)s)")
    v.add_argument("--name", help="the model name clients send, also the Serve app's name "
                   "(default: tiny-world or the directory's name)")
    v.add_argument("--replicas", type=_number(int), default=1, help="number of replicas (default: %(default)s)")
    v.add_argument("--num-cpus", type=_number(float), default=1.0, help="CPUs per replica (default: %(default)s)")
    v.add_argument("--num-gpus", type=_number(float, strict=False), default=0.0, help="GPUs per replica (default: %(default)s)")
    v.add_argument("--truncate-prompts", action="store_true",
                   help="keep a too-long prompt's last tokens instead of answering 400")
    v.add_argument("--detach", action="store_true",
                   help="return once deployed; the app stays up on the running cluster")
    v.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    from ouro_ray.config import ConfigError

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
    except ConfigError as exc:
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
