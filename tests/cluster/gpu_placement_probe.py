"""Run in a fresh process: configs/gpu.yaml's resource groups as placement groups on a simulated cluster.

The cluster's nodes are those cluster/k8s/raycluster.yaml gives at start (each worker group's ``replicas``),
with fake GPU counts and the groups' custom resources. Every group the run reserves (one per actor, Ray Train
worker and Serve LLM engine; :func:`cluster.placement.role_requests`) becomes a placement group, all at once
(they coexist in a run); the probe writes the node each landed on, by group name, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"


def main(config: str, raycluster: str, out_path: str) -> None:
    import ray
    import yaml
    from ray.cluster_utils import Cluster
    from ray.util.placement_group import placement_group, placement_group_table

    from cluster.placement import kuberay_nodes, role_requests
    from ouro_ray.config import load_config

    nodes = kuberay_nodes(yaml.safe_load(Path(raycluster).read_text()), "replicas")
    head, workers = nodes[0], nodes[1:]

    def args(node):
        custom = {k: v for k, v in node.resources.items() if k not in ("CPU", "GPU")}
        return {"num_cpus": int(node.resources["CPU"]), "num_gpus": int(node.resources["GPU"]), "resources": custom}

    cluster = Cluster(initialize_head=True, head_node_args=args(head))
    names = {cluster.head_node.node_id: head.name}
    for node in workers:
        names[cluster.add_node(**args(node)).node_id] = node.name
    ray.init(address=cluster.address, namespace="gpu-placement")
    cluster.wait_for_nodes()
    groups = []
    for req in role_requests(load_config(config), gpu_cluster=True, at="start"):
        for _ in range(req.count):
            groups.append((req.role, placement_group([dict(b) for b in req.bundles], strategy="STRICT_PACK")))
    ready = [pg.ready() for _, pg in groups]
    done, pending = ray.wait(ready, num_returns=len(ready), timeout=120)
    where: dict[str, list[str]] = {}
    for role, pg in groups:
        table = placement_group_table(pg)
        nodes_of = sorted({names.get(n, n) for n in table["bundles_to_node_id"].values()})
        where.setdefault(role, []).append(",".join(nodes_of) if table["state"] == "CREATED" else "PENDING")
    Path(out_path).write_text(json.dumps(where))  # a file, not stdout: Ray forwards worker logs to the driver's stdout
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
