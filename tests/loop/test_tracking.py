"""Experiment tracking: each backend's files read back (TensorBoard events, MLflow's local store, a W&B offline
run), the config redacted, a crash and resume that logs every round exactly once, the missing-package message.

A session here drives the trackers as `ouro run` does: a round is written to metrics.json and state.json, then
sent. The crash falls between the two, the one place a resume must both catch up and not repeat.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
from _wandb_records import read_offline_run

from ouro_ray.config import ConfigError, load_config, public_dict
from ouro_ray.loop.report import plot_rounds, write_history_csv
from ouro_ray.loop.rundir import RunDir
from ouro_ray.loop.tracking import flat_config, missing_packages, round_scalars, tracking

SECRET = "sk-literal-key-7f3a"
HISTORY = [
    {"round": 0, "reward_mean": 0.25, "reward_mean_ci": [0.125, 0.375], "win_rate_judge": "grade", "persona": None},
    *({"round": r, "reward_mean": 0.25 + 0.125 * r, "update_pg_loss": -0.5 / r, "update_kl_to_ref": 0.0625 * r,
       "update_clip_fraction": 0.25, "update_grad_norm": 1.5, "update_samples_per_s": 32.0 * r,
       "seconds_update": 2.5, "seconds_score": 1.0, "staleness": 0} for r in (1, 2, 3)),
]


def test_round_scalars_group_learner_time_and_round_keys():
    scalars = round_scalars({**HISTORY[1], "kl": float("nan"), "flag": True})
    assert scalars == {"round/reward_mean": 0.375, "learner/pg_loss": -0.5, "learner/kl_to_ref": 0.0625,
                       "learner/clip_fraction": 0.25, "learner/grad_norm": 1.5, "learner/samples_per_s": 32.0,
                       "time/update": 2.5, "time/score": 1.0, "round/staleness": 0.0, "round/flag": 1.0}
    # an interval becomes two scalars; text and missing values are left out, as is the step itself
    assert round_scalars(HISTORY[0]) == {"round/reward_mean": 0.25, "round/reward_mean_ci_lo": 0.125,
                                         "round/reward_mean_ci_hi": 0.375}


def test_flat_config_dots_keys_and_keeps_lists_as_json():
    assert flat_config({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None, "f": "x"}) == {
        "a.b": "1", "a.c": "[1, 2]", "a.d": "{}", "e": "null", "f": "x"}


def _open_run(tmp_path, backends: list[str], *extra: str):
    cfg = load_config(None, [f"tracking.backends=[{','.join(backends)}]", f"judges.http.api_key={SECRET}", *extra])
    return cfg, RunDir(tmp_path / "run").create(public_dict(cfg))


def _session(cfg, run: RunDir, last: int, crash: bool = False) -> None:
    """Rounds up to ``last`` as `ouro run` makes them; ``crash``: killed after round ``last`` is final, before it
    is sent. A session that finishes writes the report files and sends them."""
    with tracking(cfg.tracking, run, public_dict(cfg)) as trackers:
        history = run.read_json("metrics.json", {"rounds": []})["rounds"]
        for metrics in HISTORY[len(history):last + 1]:
            history.append(metrics)
            run.write_json("metrics.json", {"rounds": history})
            run.save_state({**run.state(), "completed_rounds": metrics["round"]})
            if crash and metrics["round"] == last:
                raise RuntimeError("killed")
            trackers.log_rounds([metrics])
        plot_rounds(history, run.path / "metrics.png", title="test")
        write_history_csv(history, run.path / "training_history.csv")
        trackers.log_artifacts()


def _crash_and_resume(cfg, run: RunDir) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        _session(cfg, run, last=2, crash=True)  # rounds 0 and 1 sent; round 2 final, never sent
    assert run.read_json("tracking/state.json")["logged_through"] == 1
    _session(cfg, run, last=3)  # sends round 2 (caught up from metrics.json), then round 3


def test_tensorboard_event_files_hold_every_round_once_across_a_crash(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, run = _open_run(tmp_path, ["tensorboard"])
    _crash_and_resume(cfg, run)
    events = EventAccumulator(str(run.path / "tracking" / "tensorboard"), size_guidance={"scalars": 0, "images": 0,
                                                                                        "tensors": 0}).Reload()
    reward = events.Scalars("round/reward_mean")
    assert [(e.step, e.value) for e in reward] == [(0, 0.25), (1, 0.375), (2, 0.5), (3, 0.625)]
    assert [(e.step, e.value) for e in events.Scalars("learner/pg_loss")] == [(1, -0.5), (2, -0.25),
                                                                              (3, pytest.approx(-1 / 6))]
    assert [e.value for e in events.Scalars("time/update")] == [2.5, 2.5, 2.5]
    texts = {tag: [t.tensor_proto.string_val[0].decode() for t in events.Tensors(tag)] for tag in
             events.Tags()["tensors"]}
    assert len(texts["config/text_summary"]) == 2  # one per session
    assert "api_key: <redacted>" in texts["config/text_summary"][0] and SECRET not in str(texts)
    assert texts["artifacts/training_history.csv/text_summary"][0].startswith("```\nepoch,avg_reward,")
    assert events.Images("artifacts/metrics")[0].width > 100


def test_mlflow_local_store_has_params_metrics_per_step_and_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    cfg, run = _open_run(tmp_path, ["mlflow"], "tracking.project=ouro-test", "tracking.run_name=first")
    _crash_and_resume(cfg, run)
    state = run.read_json("tracking/state.json")
    client = MlflowClient(tracking_uri=f"sqlite:///{run.path / 'tracking' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "ouro-test"]
    (found,) = client.search_runs([experiment.experiment_id])  # the resume continued the same run
    assert found.info.run_id == state["mlflow_run_id"] and found.info.run_name == "first"
    assert found.info.status == "FINISHED"
    params = found.data.params
    assert params["judges.http.api_key"] == "<redacted>" and SECRET not in json.dumps(params)
    assert params["learner.algo"] == cfg.learner.algo and params["rounds"] == str(cfg.rounds)
    assert len(params) > 150  # every leaf of the config, in batches of 100
    history = client.get_metric_history(state["mlflow_run_id"], "round/reward_mean")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.25), (1, 0.375), (2, 0.5), (3, 0.625)]
    kl = client.get_metric_history(state["mlflow_run_id"], "learner/kl_to_ref")
    assert sorted((m.step, m.value) for m in kl) == [(1, 0.0625), (2, 0.125), (3, 0.1875)]
    artifacts = {a.path for a in client.list_artifacts(state["mlflow_run_id"])}
    assert {"metrics.png", "training_history.csv", "metrics.json", "config.yaml"} <= artifacts
    stored = client.download_artifacts(state["mlflow_run_id"], "metrics.json", str(tmp_path))
    assert json.loads(open(stored).read())["rounds"][-1]["round"] == 3


def test_mlflow_marks_a_crashed_session_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    cfg, run = _open_run(tmp_path, ["mlflow"])
    with pytest.raises(RuntimeError, match="killed"):
        _session(cfg, run, last=1, crash=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{run.path / 'tracking' / 'mlflow.db'}")
    assert client.get_run(run.read_json("tracking/state.json")["mlflow_run_id"]).info.status == "FAILED"


def test_mlflow_resume_against_another_store_says_which_run_is_missing(tmp_path):
    cfg, run = _open_run(tmp_path, ["mlflow"])
    run.write_json("tracking/state.json", {"mlflow_run_id": "0123456789abcdef", "logged_through": 0})
    with pytest.raises(ValueError, match="names MLflow run 0123456789abcdef.*fix: set tracking.mlflow.tracking_uri"):
        _session(cfg, run, last=1)


def test_wandb_offline_run_holds_every_round_once_in_one_run_id(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # offline: no key, no network
    cfg, run = _open_run(tmp_path, ["wandb"], "tracking.project=ouro-test")
    _crash_and_resume(cfg, run)
    run_id = run.read_json("tracking/state.json")["wandb_run_id"]
    sessions = sorted((run.path / "tracking" / "wandb").glob("offline-run-*"))
    assert len(sessions) == 2  # `wandb sync` uploads both into run_id
    first, second = (read_offline_run(s) for s in sessions)
    assert first.run_id == second.run_id == run_id
    assert sorted(first.history) == [0, 1] and sorted(second.history) == [2, 3]  # no step twice
    assert second.history[3]["round/reward_mean"] == 0.625 and second.history[2]["learner/samples_per_s"] == 64.0
    assert first.exit_code == 1 and second.exit_code == 0
    assert first.config["judges"]["http"]["api_key"] == "<redacted>" and SECRET not in json.dumps(first.config)
    assert {"metrics.png", "training_history.csv", "metrics.json", "config.yaml"} <= set(second.files)


def test_each_backend_writes_where_its_setting_says(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    cfg, run = _open_run(tmp_path, ["tensorboard", "mlflow", "wandb"], f"tracking.tensorboard.log_dir={elsewhere}/tb",
                         f"tracking.mlflow.tracking_uri=sqlite:///{elsewhere}/ml.db",
                         f"tracking.mlflow.artifact_location={elsewhere}/ml-artifacts", f"tracking.wandb.dir={elsewhere}")
    elsewhere.mkdir()
    _session(cfg, run, last=1)
    state = run.read_json("tracking/state.json")
    run_id = state["mlflow_run_id"]
    assert list((elsewhere / "tb").glob("events.out.tfevents.*"))
    assert (elsewhere / "ml.db").is_file() and (elsewhere / "ml-artifacts" / run_id / "artifacts" / "metrics.png").is_file()
    assert len(list((elsewhere / "wandb").glob("offline-run-*"))) == 1
    assert sorted(p.name for p in (run.path / "tracking").iterdir()) == ["state.json"]  # nothing else in RUN_DIR
    with tracking(cfg.tracking, run, public_dict(cfg)) as trackers:  # what `ouro run` prints
        offline = sorted((elsewhere / "wandb").glob("offline-run-*"))[-1]  # this session's
        assert trackers.describe() == (f"tracking: tensorboard --logdir {elsewhere}/tb; MLflow run {run_id} in sqlite:///"
                                       f"{elsewhere}/ml.db; W&B offline run {state['wandb_run_id']}: wandb sync {offline}")


def test_a_missing_package_names_the_extra(monkeypatch):
    import importlib.util

    from ouro_ray.loop.run import check_run_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "alembic") else
                        real(name, *a))
    cfg = load_config(None, ["tracking.backends=[tensorboard,mlflow,wandb]"])
    assert missing_packages(cfg.tracking) == [
        "tracking.backends = ['tensorboard', 'mlflow', 'wandb']: the mlflow backend needs alembic, not installed "
        "here; fix: pip install 'ouro-ray[tracking]' (or drop mlflow from tracking.backends)",
        "tracking.backends = ['tensorboard', 'mlflow', 'wandb']: the wandb backend needs wandb, not installed here; "
        "fix: pip install 'ouro-ray[tracking]' (or drop wandb from tracking.backends)"]
    with pytest.raises(ConfigError, match=r"wandb backend needs wandb.*ouro-ray\[tracking\]"):
        check_run_config(cfg)
    server = load_config(None, ["tracking.backends=[mlflow]", "tracking.mlflow.tracking_uri=http://127.0.0.1:5000"])
    assert missing_packages(server.tracking) == []  # a server keeps its own database: no sqlite packages needed


def test_a_package_that_fails_to_import_at_open_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` raises ImportError
    cfg, run = _open_run(tmp_path, ["tensorboard"])
    with pytest.raises(ImportError, match=r"names tensorboard.*fix: pip install 'ouro-ray\[tracking\]'"):
        _session(cfg, run, last=0)


def test_no_backend_writes_nothing(tmp_path):
    cfg, run = _open_run(tmp_path, [])
    _session(cfg, run, last=1)
    assert not (run.path / "tracking").exists()


@pytest.mark.parametrize("override, key", [
    ("tracking.backends=[mlflow,mlflow]", "tracking.backends lists mlflow twice"),
    ("tracking.wandb.mode=online", "tracking.wandb.mode is set, and wandb is not in tracking.backends"),
    ("tracking.tensorboard.log_dir=/tmp/tb", "tracking.tensorboard.log_dir is set"),
    ("tracking.backends=[neptune]", "must be one of 'tensorboard', 'mlflow', 'wandb'"),
    ("tracking.project=' '", "tracking.project is empty"),
])
def test_bad_tracking_config_is_refused_with_the_fix(override, key):
    with pytest.raises(ConfigError, match="fix") as caught:
        load_config(None, [override])
    assert key in str(caught.value)


def test_a_throughput_figure_is_rows_and_tokens_over_seconds():
    import pyarrow as pa

    from ouro_ray.learner.learner import throughput

    batch = pa.table({"token_ids": [[1, 2, 3], [4, 5], [6]], "prompt_token_ids": [[9], [9], [9]]})
    # 3 rows and 3 + 2 + 1 = 6 candidate tokens (prompts not counted) in 0.5 s: 6 rows/s, 12 tokens/s;
    # as one of 2 equal shards, the update saw twice that
    assert throughput(batch, 0.5) == {"step_seconds": 0.5, "samples_per_s": 6.0, "tokens_per_s": 12.0}
    assert throughput(batch, 0.5, shards=2)["tokens_per_s"] == 24.0
    pairs = pa.table({"chosen_token_ids": [[1, 2]], "rejected_token_ids": [[3]]})
    assert math.isclose(throughput(pairs, 0.25)["tokens_per_s"], 12.0)
