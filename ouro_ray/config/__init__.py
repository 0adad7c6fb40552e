"""Typed, frozen run configuration: YAML + ``a.b=c`` overrides, validated before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ouro_ray.config.fields import ConfigError, FieldInfo, build, explain, param, to_dict
from ouro_ray.config.judges import redact
from ouro_ray.config.loader import apply_overrides, read_yaml
from ouro_ray.config.loader import load as _load
from ouro_ray.config.schema import TINY_WORLD, ClusterConfig, ModelConfig, OuroConfig


def public_dict(cfg: OuroConfig) -> dict:
    """``to_dict(cfg)`` with secrets redacted: what every file and printout of a config holds."""
    return redact(to_dict(cfg))


def load_config(path: Path | str | None, overrides: Sequence[str] = ()) -> OuroConfig:
    """The run config from a YAML file (None: defaults only) plus ``a.b=c`` overrides."""
    return _load(OuroConfig, path, overrides)


__all__ = [
    "ConfigError", "FieldInfo", "build", "explain", "param", "to_dict", "public_dict", "apply_overrides", "read_yaml",
    "load_config", "TINY_WORLD", "ClusterConfig", "ModelConfig", "OuroConfig",
]
