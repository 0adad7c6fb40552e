"""The tiny world: the embedded default model, built locally because there is no model hub.

A synthetic corpus (topics with facts, a concise and a rambling voice, safe and unsafe requests),
a byte-level BPE tokenizer trained on it, and a tiny Llama/Qwen2 pretrained on it, cached by a
hash of the config and the seed. ``build_tiny_world`` and ``WorldManifest`` load lazily, so that
importing the catalog or the config classes re-exported here does not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# ouro_ray.config imports ouro_ray.config.world, and ouro_ray.config.world imports ouro_ray.config.fields;
# importing the config package first makes either import order work.
import ouro_ray.config  # noqa: F401  (import order, see above)
from ouro_ray.config.world import CorpusConfig, PretrainConfig, TinyModelConfig, WorldConfig
from ouro_ray.world.catalog import (
    DESIRED_VOICE,
    PERSONA_CONSTRAINTS,
    PLACEHOLDER,
    REFUSAL_MARKER,
    SPECULATION_HEDGES,
    count_hedges,
)

if TYPE_CHECKING:
    from ouro_ray.world.build import WorldManifest, build_tiny_world

_LAZY = {"build_tiny_world": "ouro_ray.world.build", "WorldManifest": "ouro_ray.world.build"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ouro_ray.world' has no attribute {name!r}")


__all__ = [
    "WorldConfig", "CorpusConfig", "TinyModelConfig", "PretrainConfig", "build_tiny_world", "WorldManifest",
    "SPECULATION_HEDGES", "REFUSAL_MARKER", "PLACEHOLDER", "DESIRED_VOICE", "PERSONA_CONSTRAINTS", "count_hedges",
]
