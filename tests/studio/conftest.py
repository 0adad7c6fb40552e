"""Fixtures of the studio tests: a synthetic run directory and a studio over it (with a stand-in policy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _studio_run import TOKEN, EchoPolicy, build_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return build_run(tmp_path / "run")


@pytest.fixture
def policy() -> EchoPolicy:
    return EchoPolicy()


@pytest.fixture
def client(run_dir: Path, policy: EchoPolicy):
    """A TestClient holding the studio's token in the header (as the pages' script sends it)."""
    from fastapi.testclient import TestClient

    from ouro_ray.studio.app import create_app

    app = create_app(run_dir, token=TOKEN, policy=policy)
    with TestClient(app, headers={"X-Ouro-Token": TOKEN}) as c:
        yield c
