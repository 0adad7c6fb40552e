"""Shared fixtures: one Ray cluster per test session (Ray starts in ~5 s; per-test clusters would
dominate the suite's time)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local cluster without the dashboard, shared by every test that asks for it."""
    from cluster import connect, shutdown

    info = connect(num_cpus=2, dashboard=False, namespace="ouro-test")
    yield info
    shutdown()
