"""A real multi-node run and a lost node (issue 19): a head and a second node, each its own `ray start`
process on this machine (``cluster/nodes.py``), `ouro run` joined to the head with every role placed by
custom resources (``benchmarks.faults.node_overrides``: the rollout on the head, the other roles on the
second node, able to restart on the head), and the second node lost as round 1 starts (``kill -9`` of its
raylet and every worker on it): the run completes, the roles that were on the lost node ran again elsewhere,
every prompt and candidate id is in every round's shards exactly once, and the metrics equal the clean run's
(``clean_drill``: the same seeded sync run on the session's one-node cluster; where a role runs changes no
figure).

The nodes are not the session's cluster, and `ouro run` is a child process: this test uses no Ray
connection of its own (the clean run is the session cluster's)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


def test_a_lost_node_and_the_run_comes_through_whole(clean_drill, tiny_model_dir, tmp_path):
    from benchmarks.faults import DRILL, check, drill_node, node_overrides, start_nodes
    from cluster.nodes import free_port

    with start_nodes() as nodes:
        overrides = [*DRILL, f"model.path={tiny_model_dir}", "cluster.namespace=ouro-nodes",
                     f"cluster.serve_port={free_port()}", *node_overrides(nodes.address)]
        drilled = drill_node(None, overrides, tmp_path / "drilled", nodes, victim="node2")
        assert nodes.pids("node2") == []  # the node was lost for real: nothing of it is left
    row = check("node", clean_drill, drilled, tmp_path / "drilled", rounds=2, n=2)
    print(f"\nclean (one node) {clean_drill['seconds']:.1f} s, drilled (two nodes) {drilled['seconds']:.1f} s; "
          f"lost with the node: {drilled['lost_actors']}")
    assert row["completed"] and row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["metrics_equal"], row["differences"]
    # What was on the second node when it died, all of it needed again after the loss (round 1 ran after it).
    # Which roles Ray's scheduler put there varies from run to run (they may use the head's share of the
    # resource too), so the test asks for roles lost, not for a fixed list.
    lost = {name.split(":")[-1] for name in drilled["lost_actors"]}
    assert lost & {"ReferenceWorker", "RewardWorker", "judge", "RayTrainWorker", "WeightStore"}, lost
    if "RayTrainWorker" in lost:
        assert row["learner_restarts"] >= 1  # Ray Train restarted the learner's worker group elsewhere
