"""End to end: a real `ouro run` (one round, on the session's Ray cluster), then what a person does in
`ouro studio` through its HTTP API (a chat with the run's policy, a summary edit, review scores, a pair, an
arena vote), then `ouro run --resume RUN_DIR rounds=2`: the second round reads every record, its metrics
count them, the chat dialogue and the edited dialogue go through distill and the labyrinth, and the
person's pairs reach the DPO preference batch."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from _tiny import one_round_overrides
from rich.console import Console

pytestmark = pytest.mark.ray


def _overrides(model_dir: str, port: int) -> list[str]:
    return one_round_overrides(model_dir, port)


def test_the_resumed_round_reads_every_studio_record(ray_cluster, serve_info, tiny_model_dir, tmp_path):
    from ouro_ray.data.studio import summary_version
    from ouro_ray.loop.run import open_run, run

    console = Console(file=open(tmp_path / "console.txt", "w"), width=160)
    cfg, run_dir = open_run(None, _overrides(tiny_model_dir, serve_info.port), str(tmp_path / "run"), None)
    run(cfg, run_dir, console=console)
    path = run_dir.path

    # what a person does in the studio between the rounds, through its HTTP API (as the pages' script sends it)
    from fastapi.testclient import TestClient

    from ouro_ray.studio.app import create_app

    token = "t" * 32
    with TestClient(create_app(path, token=token), headers={"X-Ouro-Token": token}) as studio:
        def post(route: str, body: dict) -> dict:
            answer = studio.post(f"/api/{route}", json=body)
            assert answer.status_code == 200, (route, answer.text)
            return answer.json()

        question = "What does the Tamsin battery store?"
        reply = post("chat/reply", {"turns": [], "message": question})["reply"]  # the run's policy answers
        turns = [{"role": "human", "text": question}, {"role": "assistant", "text": reply}]
        chat_id = post("chat/save", {"turns": turns, "seconds": 40.0})["dialog_id"]
        summary = pq.read_table(path / "round_000" / "summaries.parquet").to_pylist()[0]
        fact = "A fact the person added in the studio."
        post("summaries", {"dialog_id": summary["dialog_id"], "round": 0, "base": summary_version(summary),
                           "facts": [*summary["facts"], fact], "logic": summary["logic"],
                           "persona": summary["persona"], "seconds": 50.0})
        review = [json.loads(line) for line in (path / "review.jsonl").read_text().splitlines()]
        assert review, "the round queued nothing for review"
        item = review[0]
        candidates = pq.read_table(path / "round_000" / "candidates.parquet").to_pylist()
        other = next(c for c in candidates if c["prompt_id"] == item["prompt_id"]
                     and c["candidate_id"] != item["candidate_id"] and c["text"] != item["candidate"])
        post("scores", {"round": 0, "prompt_id": item["prompt_id"], "candidate_id": item["candidate_id"],
                        "scores": {"helpful": 1, "honest": 1, "persona": 2}, "seconds": 20.0})
        post("pairs", {"round": 0, "prompt_id": item["prompt_id"], "chosen": other["candidate_id"],
                       "rejected": item["candidate_id"], "seconds": 15.0})
        match = post("arena/match", {"a": "round 0", "b": "round 1"})
        post("arena/vote", {"match_id": match["match_id"], "winner": "right", "seconds": 10.0})

    cfg, run_dir = open_run(None, ["rounds=2"], None, str(path))
    history = run(cfg, run_dir, console=console)
    m = history[2]  # after round 1, the round that read the studio
    assert (m["studio_chats"], m["studio_edits"], m["studio_scores"], m["studio_pairs"], m["studio_votes"]) == (1, 1, 1, 1, 1)
    assert m["studio_revisited"] == 1 and m["studio_unknown"] == 0 and m["studio_replayed"] == 1
    assert m["studio_minutes"] == pytest.approx((40 + 50 + 20 + 15 + 10) / 60)
    assert "human_pairs_unused" not in m  # DPO trains on them
    dialogs = pq.read_table(path / "round_001" / "dialogs.parquet").column("dialog_id").to_pylist()
    assert chat_id in dialogs and summary["dialog_id"] in dialogs
    summaries = {s["dialog_id"]: s for s in pq.read_table(path / "round_001" / "summaries.parquet").to_pylist()}
    assert fact in summaries[summary["dialog_id"]]["facts"]
    batch = pq.read_table(path / "round_001" / "preference_batch.parquet")
    assert item["prompt_id"] in batch.column("prompt_id").to_pylist()  # round 0's prompt: only the person's pair
    state = json.loads((path / "state.json").read_text())
    assert state["studio_seen"] == {"chats": 1, "summaries": 1, "scores": 1, "pairs": 1, "votes": 1}
