"""Every module imports: a broken import never lands."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from _paths import REPO

PACKAGES = ["ouro_ray", "actors", "cluster"]


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        names.append(pkg)
        for info in pkgutil.walk_packages([str(REPO / pkg.replace(".", "/"))], prefix=f"{pkg}."):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_every_package_is_seen() -> None:
    names = _modules()
    for expected in ("ouro_ray.config.fields", "ouro_ray.data.schemas", "ouro_ray.world", "cluster.local"):
        assert expected in names
