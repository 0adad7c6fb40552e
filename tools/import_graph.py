"""The package-level import graph of ouro-ray and its cycles.

    .venv/bin/python tools/import_graph.py [REPO]   # packages, imports between them, cycles (of REPO: a checkout)

A package here is a subpackage of ``ouro_ray`` (``ouro_ray.judges``) or a top-level package
(``actors``, ``benchmarks``, ``cluster``); an edge is any import, at module level or inside a function,
from one to another. ``.importlinter`` states the layers these edges must respect; this lists what is
there, so a cycle (a set of packages that import each other round) is visible by name.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

ROOTS = ("ouro_ray", "actors", "benchmarks", "cluster")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] != "ouro_ray" or len(parts) == 1 else f"ouro_ray.{parts[1]}"


def package_graph() -> dict[str, set[str]]:
    """{package: the packages it imports}."""
    import grimp

    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = package_of(module), package_of(imported)
            if a != b:
                edges[a].add(b)
    return dict(edges)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo.resolve()))
    edges = package_graph()
    for package in sorted(edges):
        print(f"{package:22} -> {', '.join(sorted(edges[package]))}")
    found = cycles(edges)
    print(f"{len(edges)} importing packages, {sum(map(len, edges.values()))} package-level imports; cycles: "
          + ("; ".join(" <-> ".join(c) for c in found) if found else "none"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
