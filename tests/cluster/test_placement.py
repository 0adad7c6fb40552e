"""Roles land on the nodes their config's custom resources name (a simulated multi-node cluster).

``ray.cluster_utils.Cluster`` starts real raylets in this machine, one per simulated node; it runs
in its own process because the test session already holds a Ray connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import REPO

pytestmark = pytest.mark.ray


def test_roles_land_where_the_config_says(tiny_model_dir, tmp_path):
    probe = Path(__file__).with_name("placement_probe.py")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = tmp_path / "placement.json"
    proc = subprocess.run([sys.executable, str(probe), tiny_model_dir, str(out)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = json.loads(out.read_text())
    assert set(where["rollout"]) == {where["rollout_node"]}  # both rollout actors on the rollout node
    assert set(where["judges"]) == {where["judge_node"]}  # every judge replica on the judge node
    assert set(where["reference"]) == {where["head"]}  # the head carries the reference_node resource
