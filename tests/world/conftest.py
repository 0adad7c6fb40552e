"""Shared fixtures for the tiny-world tests: a small config that builds in a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tiny import SEED, small_world_config

from ouro_ray.world import WorldConfig


@pytest.fixture(scope="session")
def world_seed() -> int:
    """The seed the shared small world is built with."""
    return SEED


@pytest.fixture(scope="session")
def world_cache(tmp_path_factory) -> Path:
    """A cache directory shared by the session, so the small world is built once."""
    return tmp_path_factory.mktemp("world-cache")


@pytest.fixture(scope="session")
def small_cfg(world_cache) -> WorldConfig:
    """The small config, caching into the session's cache directory."""
    return small_world_config(world_cache)


@pytest.fixture(scope="session")
def make_small_cfg():
    """The factory behind ``small_cfg``, for tests that need another cache directory."""
    return small_world_config


@pytest.fixture(scope="session")
def small_world(small_cfg):
    """The small world built once for the session (into the session's cache directory), with its log."""
    from ouro_ray.world import build_tiny_world

    log: list[str] = []
    manifest = build_tiny_world(small_cfg, SEED, progress=log.append)
    return manifest, log
