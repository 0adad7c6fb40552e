"""The manifest of a built world: what was made, where, and the content hash it was built for.

``manifest.json`` is written last and atomically, so a directory without a readable manifest whose
key matches is an incomplete build, never mistaken for a finished one. Paths inside the manifest
are relative to the world's root, so a world directory can be moved or copied as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ouro_ray.data.files import write_json_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
"""Version of the manifest layout; a manifest of another format is treated as absent."""


@dataclass(frozen=True)
class WorldManifest:
    """A built tiny world: its files and what training achieved."""

    root: Path
    model_dir: Path
    dialogs_path: Path
    summaries_path: Path
    n_dialogs: int
    n_params: int
    initial_loss: float
    final_loss: float
    build_seconds: float
    cached: bool
    key: str
    seed: int

    def describe(self) -> str:
        """A few lines on what was made, for the CLI to print."""
        how = "found in cache (built earlier)" if self.cached else f"built in {self.build_seconds:.0f} s"
        return "\n".join((
            f"tiny world {self.key} (seed {self.seed}) {how}",
            f"  root:      {self.root}",
            f"  model:     {self.model_dir}  ({self.n_params / 1e6:.2f}M parameters, "
            f"loss {self.initial_loss:.3f} -> {self.final_loss:.3f})",
            f"  dialogs:   {self.dialogs_path}  ({self.n_dialogs} dialogs)",
            f"  summaries: {self.summaries_path}",
        ))


def manifest_record(root: Path, data: dict[str, Any], cached: bool) -> WorldManifest:
    """The :class:`WorldManifest` of the manifest ``data`` of the world at ``root``."""
    paths = data["paths"]
    return WorldManifest(
        root=root,
        model_dir=root / paths["model_dir"],
        dialogs_path=root / paths["dialogs"],
        summaries_path=root / paths["summaries"],
        n_dialogs=int(data["counts"]["dialogs"]),
        n_params=int(data["n_params"]),
        initial_loss=float(data["initial_loss"]),
        final_loss=float(data["final_loss"]),
        build_seconds=float(data["build_seconds"]),
        cached=cached,
        key=str(data["key"]),
        seed=int(data["seed"]),
    )


def load_complete(root: Path, key: str) -> WorldManifest | None:
    """The world at ``root`` if it is a finished build for ``key``, else None."""
    try:
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT or data.get("key") != key:
            return None
        world = manifest_record(root, data, cached=True)
    except (OSError, ValueError, KeyError, TypeError):  # missing, torn or foreign manifest: not complete
        return None
    needed = (world.model_dir / "config.json", world.dialogs_path, world.summaries_path)
    return world if all(p.is_file() for p in needed) else None


def write_manifest(root: Path, data: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    write_json_atomic(root / MANIFEST_NAME, data)
