"""Run in a fresh process: a simulated 3-node cluster; writes where each role's actors landed (JSON).

Nodes: a head with 2 CPUs that is the ``reference_node``, a ``rollout_node`` and a ``judge_node``. The
roles ask for those resources in config, so they must land on those nodes and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Serve's handle threads would re-connect to "the latest cluster" after ray.shutdown(); they must not.
os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"


def main(model_dir: str, out_path: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from actors.judge import JudgeGroup
    from actors.reference import ReferenceGroup
    from actors.rollout import RolloutGroup
    from cluster.serving import ensure_serve
    from ouro_ray.config.judges import JudgesConfig, LLMJudgeConfig
    from ouro_ray.config.roles import ReferenceConfig, RoleResources, RolloutConfig

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"reference_node": 1}})
    rollout_node = cluster.add_node(num_cpus=1, resources={"rollout_node": 1})
    judge_node = cluster.add_node(num_cpus=1, resources={"judge_node": 1})
    ray.init(address=cluster.address, namespace="placement")
    cluster.wait_for_nodes()
    on = lambda res: RoleResources(num_workers=2, num_cpus=0.25, resources=res, call_timeout_s=120)  # noqa: E731
    rollout = RolloutGroup(model_dir, RolloutConfig(backend="transformers", workers=on({"rollout_node": 0.01})))
    reference = ReferenceGroup(model_dir, ReferenceConfig(workers=on({"reference_node": 0.01})))
    ensure_serve(port=int(os.environ.get("PROBE_SERVE_PORT", "18901")))
    judges = JudgeGroup(JudgesConfig(rules=("safety",), llm=LLMJudgeConfig(enabled=False), min_workers=2, max_workers=2,
                                     num_cpus=0.1, resources={"judge_node": 0.01}), prefix="placement")
    Path(out_path).write_text(json.dumps({
        "rollout_node": rollout_node.node_id, "judge_node": judge_node.node_id, "head": cluster.head_node.node_id,
        "rollout": rollout.group.nodes(), "reference": reference.group.nodes(), "judges": sorted(judges.nodes()),
    }))  # a file, not stdout: Ray forwards worker logs to the driver's stdout
    judges.close()
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
