"""Cluster launch and placement: how a run reaches Ray."""

from cluster.local import ClusterInfo, connect, shutdown

__all__ = ["ClusterInfo", "connect", "shutdown"]
