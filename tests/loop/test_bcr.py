"""The BCR reproduction (configs/safety.yaml) end to end: the seed's four prompts, the safety rule's
reward, epochs of sampling + PPO through the role groups; safety must rise well past sampling noise.

The world is configs/safety.yaml's with two layers instead of four and fewer pretraining steps (it
builds in about 35 s here; 100 steps on 500 dialogues only reached 0.56 → 0.66 in four epochs); the full
config reaches safety ≥ 0.95 (README), this one is held to a rise of 0.25 in four epochs (measured:
0.45 → 0.66 → 0.75 → 0.83 → 0.88 once the safety rule asked for a reason that names a harm).
"""

from __future__ import annotations

import csv
import json

import pytest
from _paths import REPO
from rich.console import Console

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 4


def _run(tmp, rounds: int, port: int):
    """configs/safety.yaml's loop, its world built once in ``tmp/world`` and reused; returns (run dir, history)."""
    from ouro_ray.loop.run import open_run, run

    overrides = [
        f"world.cache_dir={tmp / 'world'}", "world.model.num_layers=2", "world.pretrain.steps=150",
        "world.judge.enabled=false",  # the safety rule alone trains and grades here: no judge to build
        "world.corpus.n_dialogs=800", f"rounds={rounds}",
        f"data.prompts={REPO / 'data/examples/behavior_prompts.jsonl'}",
        "cluster.namespace=ouro-test", f"cluster.serve_port={port}",
        "rollout.workers.num_cpus=0.5", "reference.workers.num_cpus=0.25", "judges.num_cpus=0.25",
        "learner.num_cpus_per_worker=0.5",
    ]
    out = tmp / f"run-{rounds}"
    cfg, run_dir = open_run(str(REPO / "configs/safety.yaml"), overrides, str(out), None)
    history = run(cfg, run_dir, console=Console(file=open(tmp / f"console-{rounds}.txt", "w"), width=160))
    return run_dir.path, history


@pytest.fixture(scope="module")
def bcr_run(ray_cluster, serve_info, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("bcr"), EPOCHS, serve_info.port)


def test_safety_rises_from_the_base_model(bcr_run):
    _, history = bcr_run
    safety = [m["safety"] for m in history]
    print(f"\nsafety by epoch: {[round(s, 3) for s in safety]}")
    assert len(safety) == EPOCHS + 1
    assert safety[-1] - safety[0] >= 0.25, safety
    assert max(m["kl"] for m in history) < 1.0  # PPO's clip and the KL penalty keep it near the reference


def test_sync_mode_samples_each_epoch_with_the_policy_of_the_epoch_before(bcr_run):
    import pyarrow.parquet as pq

    path, history = bcr_run
    for r in range(EPOCHS):
        candidates = pq.read_table(path / f"round_{r:03d}" / "candidates.parquet")
        assert set(candidates.column("policy_version").to_pylist()) == {r}
    assert [m["staleness"] for m in history[1:]] == [0] * EPOCHS


def test_bcr_writes_history_report_and_plot(bcr_run):
    path, history = bcr_run
    with open(path / "training_history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS + 1))
    assert float(rows[0]["safety_score"]) == pytest.approx(history[0]["safety"])
    assert float(rows[0]["kl"]) == pytest.approx(0.0, abs=1e-4)
    report = json.loads((path / "safety_report.json").read_text())
    assert report["initial_safety"] == pytest.approx(history[0]["safety"])
    assert report["final_safety"] == pytest.approx(history[-1]["safety"])
    assert report["config"]["data"]["prompts"].endswith("behavior_prompts.jsonl")
    assert report["converged"] == (report["convergence_epoch"] is not None)
    assert (path / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    assert history[0]["n_prompts"] == 4  # the seed's four prompts, scored every epoch


def test_a_rerun_with_the_same_seed_writes_the_same_run(bcr_run, serve_info):
    """Sync mode on one machine: the same config and seed give every round's tables and figures bit for bit
    (sampling, the teachers, the replay pool, Ray Train's update and its weights reaching the rollout); the
    README's SmolLM2 runs parted only across machines."""
    import pyarrow.parquet as pq

    path, history = bcr_run
    again, rerun = _run(path.parent, 2, serve_info.port)
    for r in range(2):
        files = sorted(p.name for p in (path / f"round_{r:03d}").glob("*.parquet"))
        assert files and files == sorted(p.name for p in (again / f"round_{r:03d}").glob("*.parquet"))
        for name in files:
            assert pq.read_table(again / f"round_{r:03d}" / name).equals(pq.read_table(path / f"round_{r:03d}" / name)), (r, name)
    figures = ("safety", "reward_mean", "kl", "update_loss", "update_grad_norm", "replayed", "pool")
    for first, second in zip(history[:3], rerun, strict=True):
        assert {k: first.get(k) for k in figures} == {k: second.get(k) for k in figures}
