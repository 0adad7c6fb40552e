"""tools/gpu_check.py, the prepared GPU check, run here on the CPU (``--device cpu``): every step runs and reports
its figures. On a GPU machine the same script runs with ``--device cuda`` (the default); none was lent to
the session that wrote it, so its GPU figures are not measured yet (README, GPU section)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from _paths import REPO

SCRIPT = REPO / "tools" / "gpu_check.py"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


@pytest.mark.slow
def test_every_step_runs_on_the_cpu_and_reports_figures(tmp_path, tiny_model_dir):
    from ouro_ray.world_judge.choice import sibling_judge

    # The session's world judge (a causal LM with room for the judge prompts); a GPU machine builds a world itself.
    out = tmp_path / "figures.json"
    proc = _run("--device", "cpu", "--prompts", "4", "--n", "2", "--max-new-tokens", "12", "--steps", "2",
                "--model", str(sibling_judge(tiny_model_dir)), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    rollout, judge, learner = figures["rollout"], figures["judge"], figures["learner"]
    assert rollout["candidates"] == 4 * 2 and 0 < rollout["tokens"] <= 4 * 2 * 12 and rollout["tokens_per_s"] > 0
    assert judge["items"] == 8 and judge["judge_prompts"] == 8 * 3  # helpful, honest, persona per candidate
    assert len(learner["step_seconds"]) == 2 and learner["rows"] == 4 and math.isfinite(learner["loss"])
    assert learner["strategy"].startswith("plain torch step under bf16 autocast")  # said, not hidden
    for phase in (rollout, judge, learner):
        assert phase["peak_memory_mb"] > 0
    assert "tokens/s" in proc.stdout and "learner  plain torch step" in proc.stdout


def test_without_cuda_it_refuses_and_says_how_to_check_on_the_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the refusal cannot be shown")
    proc = _run("--device", "cuda", timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device visible to torch" in proc.stderr and "--device cpu" in proc.stderr
