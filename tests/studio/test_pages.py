"""The pages render what the run holds; the command refuses what it cannot serve."""

from __future__ import annotations

import json
import socket

import pytest

from ouro_ray.cli import main


def test_the_root_redirects_to_chat(client) -> None:
    resp = client.get("/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/chat"


def test_chat_page(client, run_dir) -> None:
    page = client.get("/chat").text
    assert 'id="message"' in page and str(run_dir / "chat" / "dialogs.jsonl") in page
    assert "1 saved dialogue waiting" in page


def test_distill_shows_every_round_and_the_pending_chat(client) -> None:
    page = client.get("/distill?tab=1").text
    assert "dlg-1-tea" in page and "Steep black tea for 4 minutes." in page and "How do I make tea?" in page
    assert 'href="/distill?tab=pending"' in page and 'href="/distill?tab=0"' in page
    assert client.get("/distill?tab=7").status_code == 404
    assert "not a round number" in client.get("/distill?tab=x").text


def test_review_shows_items_newest_round_first_with_targets_and_other_candidates(client) -> None:
    page = client.get("/review").text
    assert page.index('data-round="1"') < page.index('data-round="0"')
    assert "What must be preserved" in page and "Steep black tea for 4 minutes." in page
    assert "0/1 facts kept" in page and 'value="c1"' in page  # a teacher's notes; the other candidate
    only = client.get("/review?round=0&reason=spot+check").text
    assert only.count('class="card item"') == 1 and 'data-prompt-id="dlg-0-moon-q1-r1"' in only


def test_run_page_counts_the_queue_and_the_human_minutes(client) -> None:
    client.post("/api/scores", json={"round": 0, "prompt_id": "dlg-0-tea-q1-r1", "candidate_id": "c0",
                                     "scores": {"helpful": 3, "honest": 3, "persona": 3}, "seconds": 90.0})
    client.post("/api/pairs", json={"round": 0, "prompt_id": "dlg-0-tea-q1-r1", "chosen": "c0", "rejected": "c1",
                                    "seconds": 30.0})
    from ouro_ray.studio.rundata import RunData
    from ouro_ray.studio.views import run_page

    data = run_page(RunData(client.app.state.studio.run.path))
    assert data["columns"] == ["reward_mean", "grade_mean", "win_rate", "kl"]
    assert data["review"][1] == {"round": 0, "queued": 2, "unreadable": 0, "disagreements": 1, "spot_checks": 1,
                                 "labelled": 1, "pairs": 1}
    minutes = {r["kind"]: r for r in data["minutes"]["rows"]}
    assert minutes["scores"]["minutes"] == pytest.approx(1.5) and minutes["pairs"]["per_1k"] == pytest.approx(500.0)
    assert data["minutes"]["per_1k_pairs"] == pytest.approx(2000.0)  # (90 s + 30 s) / 60 / 1 pair · 1000
    page = client.get("/run").text
    assert "reward_mean" in page and "2000.0" in page


def test_plots_are_served_only_by_name(client, run_dir) -> None:
    (run_dir / "metrics.png").write_bytes(b"\x89PNG fake")
    assert client.get("/plots/metrics.png").content == b"\x89PNG fake"
    assert client.get("/plots/config.yaml").status_code == 404
    assert client.get("/plots/..%2Fconfig.yaml").status_code == 404


def test_an_unknown_api_path_answers_json(client) -> None:
    resp = client.get("/api/nothing")
    assert resp.status_code == 404 and "no such page or endpoint" in resp.json()["error"]


# ---------------------------------------------------------------- the command


def test_the_command_refuses_a_directory_that_is_no_run(tmp_path, capsys) -> None:
    assert main(["studio", str(tmp_path)]) == 2
    assert "not an `ouro run` directory" in capsys.readouterr().err


def test_the_command_refuses_a_compare_directory_that_is_no_run(run_dir, tmp_path, capsys) -> None:
    assert main(["studio", str(run_dir), "--compare", str(tmp_path / "nothing")]) == 2
    assert "--compare" in capsys.readouterr().err


def test_a_port_in_use_is_named_with_the_fix(run_dir, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["studio", str(run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and f"--port {port + 1}" in err


def test_help_documents_the_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["studio", "--help"])
    out = capsys.readouterr().out
    for word in ("--host", "--port", "--compare", "token", "studio/<kind>.jsonl", "never trained on"):
        assert word in out


def test_a_non_local_host_warns(run_dir, monkeypatch, capsys) -> None:
    import ouro_ray.studio.server as server

    monkeypatch.setattr(server, "serve", lambda app, sock: sock.close())  # bind, print, return at once
    assert main(["studio", str(run_dir), "--host", "0.0.0.0", "--port", "0"]) == 0
    captured = capsys.readouterr()
    assert "warning: listening on 0.0.0.0" in captured.err and "TLS" in captured.err
    assert "/?token=" in captured.out
    assert json.loads((run_dir / "run.json").read_text())  # the run is untouched


def test_a_run_config_that_does_not_load_is_refused_at_start(run_dir, capsys) -> None:
    (run_dir / "config.yaml").write_text("seed: many\n")
    assert main(["studio", str(run_dir), "--port", "0"]) == 2
    assert "seed" in capsys.readouterr().err


def test_text_from_the_run_is_escaped(client, run_dir) -> None:
    items = [json.loads(line) for line in (run_dir / "review.jsonl").read_text().splitlines()]
    items[0]["candidate"] = "<script>alert(1)</script>"
    (run_dir / "review.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    page = client.get("/review").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
