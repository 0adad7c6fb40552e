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


def test_the_config_loads_neither_torch_nor_ray() -> None:
    """The config is the bottom layer: validating a run's YAML must not pull in the stack it configures."""
    import subprocess
    import sys

    code = ("import sys, ouro_ray.config; heavy = [m for m in ('torch', 'ray', 'transformers', 'pyarrow') if m in "
            "sys.modules]; mine = sorted(m for m in sys.modules if m.startswith('ouro_ray') and "
            "not m.startswith('ouro_ray.config') and m != 'ouro_ray'); print(heavy, mine)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []", out


def test_the_layers_point_down() -> None:
    """The import contract in .importlinter (config at the bottom, the CLI at the top, no upward import)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
                          "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in run.stdout


def test_ruff_finds_nothing() -> None:
    """The lint rules the code follows (pyproject [tool.ruff]: pycodestyle, pyflakes, import order)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_no_package_imports_itself_round_a_cycle() -> None:
    """tools/import_graph.py: no set of packages imports each other round (the layers allow none either)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds
    edges = tool.package_graph()
    assert "ouro_ray.judges" in edges and "ouro_ray.config" not in edges  # the config imports no other package
    assert tool.cycles(edges) == []
