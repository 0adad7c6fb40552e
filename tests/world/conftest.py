"""Shared fixtures for the tiny-world tests: a small config that builds in a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ouro_ray.world import CorpusConfig, PretrainConfig, TinyModelConfig, WorldConfig

SEED = 7


def small_world_config(cache_dir: Path | str | None = None) -> WorldConfig:
    """A world small enough for tests: ~100k parameters, 40 steps, a few seconds on 2 CPU cores."""
    return WorldConfig(
        corpus=CorpusConfig(n_dialogs=160),
        model=TinyModelConfig(
            vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
            intermediate_size=128, max_seq_len=256,
        ),
        pretrain=PretrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, log_every=10),
        cache_dir=None if cache_dir is None else str(cache_dir),
    )


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
