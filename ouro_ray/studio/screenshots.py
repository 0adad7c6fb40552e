"""Screenshots of every studio page, taken with a headless Chromium (the README's ``docs/studio/*.png``).

    python -m ouro_ray.studio.screenshots RUN_DIR OUT_DIR [--compare OTHER_RUN_DIR ...] [--message TEXT]

Serves the studio for RUN_DIR on a free local port, opens it in Chromium through Playwright
(``pip install playwright``; the browser is the system's, ``--chromium``, default /usr/bin/chromium) and
writes OUT_DIR/{chat,distill,review,arena,run}.png. It writes nothing to the run: the chat page shows one
exchange that is not saved, the arena page one match that is not voted on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ouro_ray.studio.auth import new_token

PAGES = ("chat", "distill", "review", "arena", "run")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
"""Flags for Chromium in a container, offline: no sandbox (root), no GPU, nothing fetched in the background."""
VIEWPORT_HEIGHT = 900


def launch_chromium(playwright, executable: str = "/usr/bin/chromium"):
    """Debian's Chromium, headless, driven by Playwright (which cannot download its own browser here)."""
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def _prepare(page, name: str, message: str) -> None:
    """Bring a page to the state worth a picture."""
    if name == "chat" and message:
        page.fill("#message", message)
        page.keyboard.press("Enter")
        page.wait_for_selector(".dialogue .turn.assistant:not(.pending)", timeout=120_000)
    elif name == "arena" and page.query_selector("#arena-form"):
        page.wait_for_selector("#match:not([hidden])", timeout=30_000)
    elif name == "run":
        page.wait_for_load_state("networkidle")


def take(run_dir: Path, out_dir: Path, compare: list[Path], message: str, width: int, height: int,
         chromium: str) -> list[Path]:
    """The pages' PNGs in ``out_dir``: as tall as the page, at least the viewport (``width`` × 900), at most
    ``height`` pixels."""
    from playwright.sync_api import sync_playwright

    from ouro_ray.studio.app import create_app
    from ouro_ray.studio.server import serving_in_thread

    token = new_token()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with serving_in_thread(create_app(run_dir, compare, token=token)) as url, sync_playwright() as p:
        browser = launch_chromium(p, chromium)
        page = browser.new_page(viewport={"width": width, "height": min(height, VIEWPORT_HEIGHT)})
        page.goto(f"{url}/?token={token}")
        for name in PAGES:
            page.goto(f"{url}/{name}")
            _prepare(page, name, message)
            full = page.evaluate("document.documentElement.scrollHeight")
            path = out_dir / f"{name}.png"
            page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width,
                                                                  "height": min(full, height)})
            written.append(path)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    from ouro_ray.studio.rundata import NotARunDirectory, check_run_dir

    p = argparse.ArgumentParser(prog="python -m ouro_ray.studio.screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--compare", nargs="+", action="extend", default=[], metavar="OTHER_RUN_DIR")
    p.add_argument("--message", default="How do I make tea?", help="what to say on the chat page ('' for nothing)")
    p.add_argument("--width", type=int, default=1200, help="viewport width in pixels (default: %(default)s)")
    p.add_argument("--height", type=int, default=1300, help="largest picture height in pixels (default: %(default)s)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        run_dir = check_run_dir(args.run_dir)
        compare = [check_run_dir(c, "--compare") for c in args.compare]
    except NotARunDirectory as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(f"screenshots: --chromium {args.chromium}: no such file; fix: install Debian's chromium (make install "
              "does, as root) or pass its path", file=sys.stderr)
        return 2
    for path in take(run_dir, Path(args.out_dir), compare, args.message, args.width, args.height, args.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
