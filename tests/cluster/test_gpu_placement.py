"""configs/gpu.yaml's roles fit the nodes cluster/k8s/raycluster.yaml gives, with no model and no GPU here.

:func:`cluster.placement.role_requests` reads each role's resources from the config; they are packed onto the
RayCluster's nodes (at start and with every autoscaled group at its most), printed by
``ouro config --placement``, and placed for real as placement groups on a simulated Ray cluster whose nodes
carry fake GPU counts and the custom resources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from _paths import REPO

from cluster.placement import kuberay_nodes, place, role_requests
from ouro_ray.cli import main
from ouro_ray.config import load_config

GPU_YAML = REPO / "configs" / "gpu.yaml"
RAYCLUSTER = REPO / "cluster" / "k8s" / "raycluster.yaml"
ROLE_NODES = {"rollout": {"rollout"}, "reference": {"reference"}, "reward model": {"reference"},
              "learner": {"learner"}, "reward model learner": {"learner"}, "judges": {"judge", "judge-gpu"},
              "judge engines (Serve LLM)": {"judge-gpu"}}
"""The worker groups each role of configs/gpu.yaml may land on: a judge replica (an HTTP client, no GPU) needs only
judge_node, which both judge groups declare; a Serve LLM engine also needs the GPU only judge-gpu has."""


def _raycluster() -> dict:
    return yaml.safe_load(RAYCLUSTER.read_text())


def test_each_role_asks_for_its_gpus_and_its_node_resource():
    requests = {r.role: r for r in role_requests(load_config(GPU_YAML), gpu_cluster=True, at="start")}
    assert set(requests) == set(ROLE_NODES)
    bundle = lambda role: dict(requests[role].bundles[0])  # noqa: E731
    # two vLLM engines, each over tensor_parallel_size = 2 GPUs
    assert (requests["rollout"].count, bundle("rollout")) == (2, {"CPU": 4.0, "GPU": 2.0, "rollout_node": 0.01})
    assert bundle("reference") == {"CPU": 2.0, "GPU": 1.0, "reference_node": 0.01}
    assert bundle("reward model") == {"CPU": 2.0, "GPU": 1.0, "reference_node": 0.01}
    # ZeRO-3 on 3 Ray Train workers plus the reward model's 1: the learner node's 4 GPUs
    assert (requests["learner"].count, bundle("learner")) == (3, {"CPU": 4.0, "GPU": 1.0, "learner_node": 0.01})
    assert requests["reward model learner"].count == 1
    assert bundle("judges") == {"CPU": 1.0, "judge_node": 0.01}  # HTTP clients: no GPU
    # a Serve LLM engine: 1 GPU, its CPU plus the replica actor's (Serve LLM puts it in bundle 0)
    assert bundle("judge engines (Serve LLM)") == {"CPU": 2.0, "GPU": 1.0, "judge_node": 0.01}
    custom = {k for r in requests.values() for b in r.bundles for k in b} - {"CPU", "GPU"}
    assert custom == {"rollout_node", "learner_node", "judge_node", "reference_node"}


@pytest.mark.parametrize("at, scale", [("start", "replicas"), ("max", "maxReplicas")])
def test_every_role_fits_the_rayclusters_nodes(at, scale):
    nodes = kuberay_nodes(_raycluster(), scale)
    where, problems = place(role_requests(load_config(GPU_YAML), at=at), nodes)
    assert problems == []
    for role, groups in ROLE_NODES.items():
        assert {n.rsplit("-", 1)[0] for n in where[role]} <= groups, role


def test_a_role_that_does_not_fit_is_named_with_its_key():
    cfg = load_config(GPU_YAML, ["learner.num_workers=4"])  # 4 + the reward model's 1 > the learner node's 4 GPUs
    _, problems = place(role_requests(cfg), kuberay_nodes(_raycluster()))
    assert len(problems) == 1
    assert problems[0].startswith("reward_model.learner_workers: reward model learner group 1 of 1 "
                                  "({CPU: 4, GPU: 1, learner_node: 0.01}) fits on no node")


def test_ouro_config_placement(capsys, tmp_path):
    assert main(["config", str(GPU_YAML), "--placement", str(RAYCLUSTER)]) == 0
    out = capsys.readouterr().out
    assert "rollout                    rollout-0, rollout-0" in out
    assert "judge engines (Serve LLM)  judge-gpu-0, judge-gpu-1" in out  # at maxReplicas
    assert main(["config", str(GPU_YAML), "rollout.workers.num_gpus=3", "rollout.vllm.tensor_parallel_size=3",
                 "--placement", str(RAYCLUSTER)]) == 2
    assert "rollout.workers: rollout group 2 of 2" in capsys.readouterr().err
    assert main(["config", str(GPU_YAML), "--placement", "nowhere.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "rc.yaml"
    bad.write_text("kind: RayCluster\nspec: {headGroupSpec: {}}\n")
    assert main(["config", str(GPU_YAML), "--placement", str(bad)]) == 2
    assert "lacks or misspells 'template'" in capsys.readouterr().err


@pytest.mark.ray
def test_placement_groups_land_on_their_nodes_in_a_simulated_cluster(tmp_path):
    out = tmp_path / "where.json"
    probe = REPO / "tests" / "cluster" / "gpu_placement_probe.py"
    proc = subprocess.run([sys.executable, str(probe), str(GPU_YAML), str(RAYCLUSTER), str(out)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = json.loads(out.read_text())
    assert set(where) == set(ROLE_NODES)
    for role, groups in ROLE_NODES.items():  # every group placed (none PENDING), each on a node of its groups
        assert where[role] and {n.rsplit("-", 1)[0] for n in where[role]} <= groups, (role, where[role])
