"""The session token: nothing without it, the cookie flow, and writes only with the header."""

from __future__ import annotations

import pytest
from _studio_run import TOKEN, lines
from fastapi.testclient import TestClient

from ouro_ray.studio.app import create_app
from ouro_ray.studio.auth import cookie_name

PAGES = ("/chat", "/distill", "/review", "/arena", "/run", "/static/studio.js", "/plots/metrics.png")


@pytest.fixture
def bare(run_dir, policy):
    """A client that holds no token (a browser that did not open the printed URL)."""
    with TestClient(create_app(run_dir, token=TOKEN, policy=policy), follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_the_token(bare, path) -> None:
    resp = bare.get(path)
    assert resp.status_code == 401
    assert "Open the URL `ouro studio` printed" in resp.text


def test_the_api_answers_401_in_json(bare) -> None:
    resp = bare.get("/api/arena/elo")
    assert resp.status_code == 401
    assert "session token" in resp.json()["error"]


@pytest.mark.parametrize("where", ["header", "cookie", "query"])
def test_a_wrong_token_is_refused(bare, where) -> None:
    if where == "header":
        resp = bare.get("/chat", headers={"X-Ouro-Token": "wrong"})
    elif where == "cookie":
        bare.cookies.set(cookie_name(TOKEN), "wrong")
        resp = bare.get("/chat")
    else:
        resp = bare.get("/chat?token=wrong")
    assert resp.status_code == 401
    assert "set-cookie" not in resp.headers


def test_the_url_with_the_token_sets_a_strict_httponly_cookie_and_redirects(bare) -> None:
    resp = bare.get(f"/review?round=0&token={TOKEN}")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/review?round=0"  # the token leaves the address bar
    cookie = resp.headers["set-cookie"]
    assert f"{cookie_name(TOKEN)}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = bare.get("/review?round=0")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200
    assert f'<meta name="ouro-token" content="{TOKEN}">' in page.text


def test_a_write_with_the_cookie_but_without_the_header_is_refused(bare, run_dir) -> None:
    bare.get(f"/?token={TOKEN}")
    body = {"round": 0, "prompt_id": "dlg-0-tea-q1-r1", "candidate_id": "c0",
            "scores": {"helpful": 4, "honest": 4, "persona": 4}, "seconds": 3.0}
    resp = bare.post("/api/scores", json=body)  # what a cross-site form could make the browser send
    assert resp.status_code == 403
    assert "X-Ouro-Token header" in resp.json()["error"]
    assert lines(run_dir / "studio" / "scores.jsonl") == []
    ok = bare.post("/api/scores", json=body, headers={"X-Ouro-Token": TOKEN})
    assert ok.status_code == 200, ok.text
    assert len(lines(run_dir / "studio" / "scores.jsonl")) == 1


def test_the_header_alone_is_enough(bare) -> None:
    assert bare.get("/run", headers={"X-Ouro-Token": TOKEN}).status_code == 200
