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


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The small tiny world (model, tokenizer, corpus) and its judge (``<root>/judge``, what
    ``judges.llm.model: auto`` finds beside the model), built once per session into a temporary cache."""
    from _tiny import SEED, small_world_config

    from ouro_ray.world import build_tiny_world
    from ouro_ray.world_judge.build import build_world_judge

    cfg = small_world_config(tmp_path_factory.mktemp("tiny-world-cache"))
    world = build_tiny_world(cfg, SEED, progress=lambda _: None)
    build_world_judge(cfg, SEED, progress=lambda _: None, world=world)
    return world


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_world) -> str:
    """The small world's HF model directory."""
    return str(tiny_world.model_dir)


@pytest.fixture(scope="session")
def serve_info(ray_cluster):
    """Ray Serve on the session cluster, its HTTP proxy on a free loopback port."""
    import socket

    from cluster.serving import ensure_serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    info = ensure_serve("127.0.0.1", port)
    yield info
    from ray import serve

    serve.shutdown()


@pytest.fixture(scope="session")
def clean_drill(ray_cluster, serve_info, tiny_model_dir, tmp_path_factory):
    """The fault drill's clean run (``benchmarks.faults.DRILL`` on the small world, sync mode, seeded) on the session
    cluster: the reference that both the in-process drill and the lost-node drill must equal."""
    from benchmarks.faults import DRILL, drill_in_process

    return drill_in_process(None, [*DRILL, f"model.path={tiny_model_dir}", "cluster.namespace=ouro-test",
                                   f"cluster.serve_port={serve_info.port}"], tmp_path_factory.mktemp("drill") / "clean")
