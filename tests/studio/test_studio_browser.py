"""The studio in a real headless browser (Debian's Chromium driven by Playwright), used with the keyboard.

One session: open the printed URL, chat a turn and save it, add a fact to a summary, label a review item
with keys 1-5 and Enter, pick the better of two with a key, vote in the arena with an arrow key; then the
files under RUN_DIR hold exactly those actions, each with the seconds the page measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _studio_run import TOKEN, lines

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason="Debian chromium not installed: make install installs it (apt-get, as root)")


def _chat(page, url: str) -> None:
    page.goto(f"{url}/?token={TOKEN}")  # sets the cookie, then / → /chat
    assert page.url == f"{url}/chat"
    page.fill("#message", "How do I make tea?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".turn.assistant:not(.pending)")
    assert "You said: How do I make tea? (reply 0)" in page.inner_text("#dialogue")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#status.ok:has-text('the next round')")


def _distill(page, url: str) -> None:
    page.goto(f"{url}/distill?tab=0")
    card = page.locator("article.summary[data-dialog-id='dlg-0-tea']")
    card.locator(".edit-list[data-field='facts'] .add").click()  # focuses the new, empty fact
    page.keyboard.type("Add milk if you like.")
    page.keyboard.press("Enter")  # Enter in a field saves its summary
    page.wait_for_selector("#status.ok:has-text('dlg-0-tea')")
    assert card.locator(".badge.person").is_visible()


def _review(page, url: str) -> None:
    page.goto(f"{url}/review")
    first = page.locator("article.item:not([hidden])")
    assert first.get_attribute("data-round") == "1"  # newest round first
    page.keyboard.press("j")
    page.keyboard.press("k")  # back to the first item
    for key in ("4", "5", "2"):  # helpful, honest, persona; focus moves on to the save button
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#status.ok:has-text('scores')")
    second = page.locator("article.item:not([hidden])")  # saving moved on to the next item
    assert second.get_attribute("data-prompt-id") == "dlg-1-moon-q1-r1"
    page.keyboard.press("b")  # the other candidate (c0) is better than this one (c1)
    page.wait_for_selector("#status.ok:has-text('c0 is better than c1')")


def _arena(page, url: str) -> None:
    page.goto(f"{url}/arena")
    page.wait_for_selector("#match:not([hidden])")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#revealed:not([hidden])")
    assert "left was round" in page.inner_text("#revealed")
    assert "1 vote" in page.inner_text("#elo caption")


def test_a_person_uses_every_page_with_the_keyboard(run_dir, policy) -> None:
    from playwright.sync_api import sync_playwright

    from ouro_ray.studio.app import create_app
    from ouro_ray.studio.screenshots import launch_chromium
    from ouro_ray.studio.server import serving_in_thread

    errors: list[str] = []
    with serving_in_thread(create_app(run_dir, token=TOKEN, policy=policy)) as url, sync_playwright() as p:
        browser = launch_chromium(p, str(CHROMIUM))
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(20_000)
        try:
            for step in (_chat, _distill, _review, _arena):
                step(page, url)
        finally:
            browser.close()
    assert errors == [], errors
    studio = run_dir / "studio"
    [chat] = lines(studio / "chats.jsonl")
    dialogs = lines(run_dir / "chat" / "dialogs.jsonl")
    assert dialogs[-1]["dialog_id"] == chat["dialog_id"] and chat["exchanges"] == 1
    assert dialogs[-1]["turns"][0] == {"role": "human", "text": "How do I make tea?"}
    [summary] = lines(studio / "summaries.jsonl")
    assert summary["dialog_id"] == "dlg-0-tea" and summary["facts"][-1] == "Add milk if you like."
    [scores] = lines(studio / "scores.jsonl")
    assert (scores["round"], scores["prompt_id"], scores["candidate_id"]) == (1, "dlg-1-tea-q1-r1", "c0")
    assert scores["scores"] == {"helpful": 4, "honest": 5, "persona": 2}
    [pair] = lines(studio / "pairs.jsonl")
    assert (pair["round"], pair["prompt_id"], pair["chosen"], pair["rejected"]) == (1, "dlg-1-moon-q1-r1", "c0", "c1")
    [vote] = lines(studio / "votes.jsonl")
    assert vote["winner"] == "left" and {vote["left"], vote["right"]} == {"round 0", "round 1"}
    for record in (chat, summary, scores, pair, vote):
        assert record["seconds"] > 0


def test_the_screenshot_tool_pictures_every_page_and_writes_nothing(run_dir, tmp_path) -> None:
    from ouro_ray.studio.screenshots import PAGES, main

    assert main([str(run_dir), str(tmp_path / "shots"), "--message", "", "--width", "800", "--height", "700"]) == 0
    for name in PAGES:
        png = (tmp_path / "shots" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 800  # the IHDR width
    assert not (run_dir / "studio").exists()
