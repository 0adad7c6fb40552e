"""Reaching Ray: a local cluster from config values, reuse of a live connection, refused sizing."""

from __future__ import annotations

import pytest

from cluster import connect


@pytest.mark.ray
def test_local_cluster_has_the_requested_cpus(ray_cluster) -> None:
    assert ray_cluster.resources["CPU"] == 2
    assert ray_cluster.namespace == "ouro-test"
    assert "started a local Ray cluster" in ray_cluster.describe()


@pytest.mark.ray
def test_second_connect_reuses_the_live_cluster(ray_cluster) -> None:
    again = connect(namespace="ouro-test")
    assert again.address == ray_cluster.address
    assert not again.started_here


@pytest.mark.ray
def test_connecting_in_another_namespace_is_refused(ray_cluster) -> None:
    with pytest.raises(RuntimeError, match="namespace 'ouro-test'"):
        connect(namespace="elsewhere")


def test_sizing_a_joined_cluster_is_refused(monkeypatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ValueError, match="cluster.num_cpus sizes a local cluster"):
        connect("ray://example:10001", num_cpus=4)
