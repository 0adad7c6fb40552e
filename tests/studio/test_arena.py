"""The arena: blind matches, votes checked against the issued matches, and the ELO of hand-made votes."""

from __future__ import annotations

import math

import pytest
from _studio_run import lines

from ouro_ray.studio.arena import elo_table, short_names


def _votes(*results: tuple[str, str, str]) -> list[dict]:
    return [{"left": left, "right": right, "winner": w, "prompt_id": f"p{i}", "candidate_id": "c0"}
            for i, (left, right, w) in enumerate(results)]


def test_elo_of_three_wins_to_one() -> None:
    # A beat B 3 times, B beat A once: P(A beats B) = 3/4, so theta_A - theta_B = ln 3 and the ratings
    # (mean 1000) are 1000 ± (400 / ln 10) · ln 3 / 2 = 1000 ± 200 · log10(3) = 1000 ± 95.42.
    table = elo_table(_votes(("A", "B", "left"), ("B", "A", "right"), ("A", "B", "left"), ("A", "B", "right")),
                      n_boot=50)
    by = {r["model"]: r for r in table["rows"]}
    assert table["votes"] == 4 and table["prior"] == 0.0
    assert by["A"]["rating"] == pytest.approx(1000 + 200 * math.log10(3), abs=1e-6)
    assert by["B"]["rating"] == pytest.approx(1000 - 200 * math.log10(3), abs=1e-6)
    assert (by["A"]["wins"], by["A"]["losses"], by["A"]["ties"]) == (3, 1, 0)
    assert (by["B"]["wins"], by["B"]["losses"], by["B"]["ties"]) == (1, 3, 0)
    assert by["A"]["low"] <= by["A"]["rating"] <= by["A"]["high"]


def test_a_tie_counts_half_a_win_to_each() -> None:
    # A won once, two ties: A has 1 + 2·½ = 2 wins to B's 1, ratio 2, so 1000 ± 200 · log10(2) = 1000 ± 60.21.
    table = elo_table(_votes(("A", "B", "left"), ("A", "B", "tie"), ("B", "A", "tie")), n_boot=50)
    by = {r["model"]: r for r in table["rows"]}
    assert table["prior"] == 0.0  # the ties link B back to A: a finite maximum without a prior
    assert by["A"]["rating"] == pytest.approx(1000 + 200 * math.log10(2), abs=1e-6)
    assert (by["A"]["wins"], by["A"]["ties"], by["B"]["losses"], by["B"]["ties"]) == (1, 2, 1, 2)


def test_someone_who_won_everything_gets_half_a_tie_per_pair() -> None:
    # A beat B twice: with prior ½ (one virtual tie split ½/½), A has 2.25 wins to B's 0.25, ratio 9,
    # so 1000 ± 200 · log10(9) = 1000 ± 190.85.
    table = elo_table(_votes(("A", "B", "left"), ("B", "A", "right")), n_boot=50)
    by = {r["model"]: r for r in table["rows"]}
    assert table["prior"] == 0.5
    assert by["A"]["rating"] == pytest.approx(1000 + 200 * math.log10(9), abs=1e-6)


def test_no_votes_no_table() -> None:
    assert elo_table([]) == {"votes": 0, "prior": 0.0, "rows": []}


def test_compare_runs_are_named_by_the_shortest_unique_path() -> None:
    from pathlib import Path

    assert short_names([Path("/r/sft/seed_0"), Path("/r/rlhf/seed_0")]) == ["sft/seed_0", "rlhf/seed_0"]
    assert short_names([Path("/a/x"), Path("/b/y")]) == ["x", "y"]


def test_a_match_is_blind_and_its_vote_reveals_the_models(client, run_dir) -> None:
    match = client.post("/api/arena/match", json={"a": "round 0", "b": "round 1"}).json()
    assert set(match) == {"match_id", "prompt", "left", "right"}  # no model names before the vote
    assert match["prompt"].startswith("Held-out question")
    sides = {match["left"].split(" answer")[0], match["right"].split(" answer")[0]}
    assert sides == {"round 0", "round 1"}
    assert match["left"].split(" answer ")[1] == match["right"].split(" answer ")[1]  # same prompt, same candidate
    resp = client.post("/api/arena/vote", json={"match_id": match["match_id"], "winner": "left", "seconds": 2.5})
    assert resp.status_code == 200, resp.text
    record = resp.json()["record"]
    assert record["left"] == match["left"].split(" answer")[0] and record["winner"] == "left"
    [written] = lines(run_dir / "studio" / "votes.jsonl")
    assert written["prompt_id"] in match["left"] and written["candidate_id"] in ("c0", "c1")
    rows = {r["model"]: r for r in resp.json()["elo"]["rows"]}
    assert rows[record["left"]]["wins"] == 1 and rows[record["right"]]["losses"] == 1


def test_a_vote_is_taken_once_and_only_for_an_issued_match(client, run_dir) -> None:
    match = client.post("/api/arena/match", json={"a": "round 0", "b": "round 1"}).json()
    vote = {"match_id": match["match_id"], "winner": "tie", "seconds": 1.0}
    assert client.post("/api/arena/vote", json=vote).status_code == 200
    replay = client.post("/api/arena/vote", json=vote)
    assert replay.status_code == 409 and "already voted" in replay.json()["error"]
    forged = client.post("/api/arena/vote", json={**vote, "match_id": "made-up"})
    assert forged.status_code == 404 and "no such match" in forged.json()["error"]
    bad = client.post("/api/arena/vote", json={**vote, "winner": "both"})
    assert bad.status_code == 422 and "winner" in bad.json()["error"]
    assert len(lines(run_dir / "studio" / "votes.jsonl")) == 1


@pytest.mark.parametrize("a, b, status, message", [
    ("round 0", "round 0", 422, "pick two different models"),
    ("round 0", "round 9", 404, "b = 'round 9': no such model; the models are round 0, round 1"),
])
def test_a_bad_match_request_is_refused(client, a, b, status, message) -> None:
    resp = client.post("/api/arena/match", json={"a": a, "b": b})
    assert resp.status_code == status and message in resp.json()["error"]


def test_compare_runs_join_the_arena(run_dir, tmp_path, policy) -> None:
    from _studio_run import TOKEN, build_run
    from fastapi.testclient import TestClient

    from ouro_ray.studio.app import create_app

    other = build_run(tmp_path / "sft" / "seed_0")
    with TestClient(create_app(run_dir, [other], token=TOKEN, policy=policy), headers={"X-Ouro-Token": TOKEN}) as c:
        page = c.get("/arena").text
        assert "seed_0 round 1" in page and "never trains on them" in page
        assert c.post("/api/arena/match", json={"a": "round 0", "b": "seed_0 round 1"}).status_code == 200
