"""End to end: a real `ouro run` (one round, on the session's Ray cluster), then what a person does in
`ouro studio` through its HTTP API (a chat with the run's policy, a summary edit, review scores, a pair, an
arena vote), then `ouro run --resume RUN_DIR rounds=2`: the second round reads every record, its metrics
count them, the chat dialogue and the edited dialogue go through distill and the labyrinth, and the
person's pairs reach the DPO preference batch.

The same run has every experiment tracker on (one run and its resume, not a second end-to-end run for them):
one tracked run per backend holds rounds 0, 1 and 2 once each, the learner's update figures and the stage
times among them, and the run's plots and reports as artifacts; the judge group and the learner emit the
dashboard's metrics."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from _tiny import one_round_overrides
from _wandb_records import read_offline_run
from rich.console import Console

pytestmark = pytest.mark.ray


def _overrides(model_dir: str, port: int) -> list[str]:
    return one_round_overrides(model_dir, port) + ["tracking.backends=[tensorboard,mlflow,wandb]",
                                                   "tracking.project=ouro-e2e"]


def test_the_resumed_round_reads_every_studio_record(ray_cluster, serve_info, tiny_model_dir, tmp_path, monkeypatch):
    from cluster import telemetry
    from ouro_ray.data.studio import summary_version
    from ouro_ray.loop.run import open_run, run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    recorded: dict[str, float] = {}  # the dashboard's metrics the driver emits (the judge group, the in-process learner)
    real = telemetry.record
    monkeypatch.setattr(telemetry, "record", lambda name, value, **tags: recorded.update({name: value}) or real(
        name, value, **tags))
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
    tracked_once_per_backend(run_dir, history)
    assert recorded["ouro_judge_replicas"] == 1 and recorded["ouro_learner_step_seconds"] > 0  # judges.max_workers=1
    assert recorded["ouro_loop_round"] == 2


def tracked_once_per_backend(run_dir, history: list[dict]) -> None:
    """TensorBoard, MLflow and W&B (offline) each hold one run: every round once, the update's figures, the artifacts."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    state = run_dir.read_json("tracking/state.json")
    assert state["logged_through"] == 2 and [m["round"] for m in history] == [0, 1, 2]

    events = EventAccumulator(str(run_dir.path / "tracking" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    reward = [(e.step, e.value) for e in events.Scalars("round/reward_mean")]
    assert reward == [(m["round"], pytest.approx(m["reward_mean"])) for m in history]
    for tag in ("time/update", "time/score", "time/round"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2], tag
    # round 1 had no pair past scoring.pair_margin (DPO skipped it); round 2 trained on the person's pair
    assert [e.step for e in events.Scalars("learner/skipped")] == [1]
    for tag in ("learner/loss", "learner/grad_norm", "learner/reward_margin", "learner/samples_per_s",
                "learner/tokens_per_s"):
        assert [e.step for e in events.Scalars(tag)] == [2], tag
    assert min(e.value for e in events.Scalars("learner/tokens_per_s")) > 0

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.path / 'tracking' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "ouro-e2e"]
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert tracked.info.run_id == state["mlflow_run_id"] and tracked.info.status == "FINISHED"
    assert tracked.info.run_name == run_dir.path.name and tracked.data.params["learner.algo"] == "dpo"
    steps = [m.step for m in client.get_metric_history(tracked.info.run_id, "learner/grad_norm")]
    assert steps == [2]
    assert {"metrics.png", "training_history.csv", "metrics.json"} <= {a.path for a in client.list_artifacts(
        tracked.info.run_id)}

    sessions = [read_offline_run(d) for d in sorted((run_dir.path / "tracking" / "wandb").glob("offline-run-*"))]
    assert [sorted(s.history) for s in sessions] == [[0, 1], [2]]
    assert {s.run_id for s in sessions} == {state["wandb_run_id"]}
