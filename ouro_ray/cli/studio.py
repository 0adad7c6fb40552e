"""``ouro studio``: the human feedback studio, a local web app over a run directory."""

from __future__ import annotations

import argparse
import sys

from ouro_ray.cli.common import EXIT_BAD_CONFIG, number


def cmd_studio(args: argparse.Namespace) -> int:
    from ouro_ray.studio.app import create_app
    from ouro_ray.studio.auth import new_token
    from ouro_ray.studio.rundata import NotARunDirectory, check_run_dir
    from ouro_ray.studio.server import PortInUseError, bind, is_local, serve

    token = new_token()
    try:
        run_dir = check_run_dir(args.run_dir)
        app = create_app(run_dir, [check_run_dir(c, "--compare") for c in args.compare], token=token)
        sock = bind(args.host, args.port)
    except (NotARunDirectory, PortInUseError, OSError) as exc:
        print(f"ouro studio: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    if not is_local(args.host):
        print(f"ouro studio: warning: listening on {args.host}, not only on this machine: anyone who can reach port "
              f"{port} and has the token can write to {run_dir}; put it behind TLS (a reverse proxy) or use an SSH "
              "tunnel to 127.0.0.1 instead", file=sys.stderr)
    print(f"ouro studio for {run_dir}\n  open: http://{host}:{port}/?token={token}\n"
          f"  writes go to {run_dir / 'studio'} and {run_dir / 'chat' / 'dialogs.jsonl'}; Ctrl-C stops", flush=True)
    try:
        serve(app, sock)
    except KeyboardInterrupt:  # Ctrl-C is how a person stops the studio: not an error
        return 0
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "studio", help="the human feedback studio: chat, edit summaries, label the review queue, arena, run metrics",
        description="A local web app over an `ouro run` directory. Pages: Chat (stage 1: talk with the run's current "
                    "policy; a saved dialogue goes to RUN_DIR/chat/dialogs.jsonl), Distill (stage 2: edit each "
                    "dialogue's facts, logic and persona), Review (stage 5: score queued candidates 1-5 on helpful, "
                    "honest, persona, or pick the better of two), Arena (blind pairwise votes between the run's "
                    "measured rounds and --compare runs on the held-out prompts, with ELO; evaluation only, never "
                    "trained on) and Run (metrics, plots, review counts, human minutes). Everything a person does is "
                    "appended to RUN_DIR/studio/<kind>.jsonl (chats, summaries, scores, pairs, votes); the next round "
                    "(`ouro run --resume RUN_DIR rounds=N+1`) reads it. The command prints a URL with a fresh session "
                    "token; every page and API call needs it (cookie, or the X-Ouro-Token header).")
    s.add_argument("run_dir", metavar="RUN_DIR", help="an `ouro run` directory (its --out)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; any other address is "
                        "reachable by others: put it behind TLS)")
    s.add_argument("--port", type=number(int, minimum=0, strict=False, maximum=65535), default=8470,
                   help="port to listen on (default: %(default)s; 0 picks a free one)")
    s.add_argument("--compare", nargs="+", action="extend", default=[], metavar="OTHER_RUN_DIR",
                   help="other `ouro run` directories whose measured rounds join the arena (named '<run> round k')")
    s.set_defaults(func=cmd_studio)
