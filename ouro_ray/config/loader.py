"""YAML files plus ``a.b=c`` command-line overrides → a validated, frozen config object.

Each key's origin (``FILE:LINE`` or ``override 'a.b=c'``) is tracked so every error says where the
bad value came from. YAML's silent last-one-wins on duplicate keys is refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from ouro_ray.config.fields import ConfigError, build

T = TypeVar("T")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _walk(node: yaml.Node, prefix: str, filename: str, origins: dict[str, str], problems: list[str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
        where = f"{filename}:{key_node.start_mark.line + 1}"
        if key in seen:
            problems.append(f"{where}: duplicate key {key!r} (first at {origins[key]}); fix: keep one of them")
        seen.add(key)
        origins.setdefault(key, where)
        _walk(value_node, key, filename, origins, problems)


def read_yaml(path: Path | str) -> tuple[dict[str, Any], dict[str, str]]:
    """A YAML mapping and the ``FILE:LINE`` of each dotted key in it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such config file; fix: pass a path such as configs/tiny.yaml"])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping of keys, got {type(data).__name__}"])
    origins: dict[str, str] = {}
    problems: list[str] = []
    _walk(node, "", str(path), origins, problems)
    if problems:
        raise ConfigError(problems)
    return data, origins


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], origins: dict[str, str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML: 0.05, true, null, [a, b]) to a copy."""
    out = _deep_copy(data)
    problems: list[str] = []
    for arg in overrides:
        key, sep, raw = arg.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            problems.append(f"override {arg!r}: expected KEY=VALUE with a dotted key, e.g. seed=3 or world.model.num_layers=2")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw  # an unparseable scalar is taken as the literal string the user typed
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            origins.setdefault(".".join(parts[: i + 1]), f"override {arg!r}")
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"override {arg!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
                break
            node = child
        else:
            node[parts[-1]] = value
            origins[key] = f"override {arg!r}"
    if problems:
        raise ConfigError(problems)
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def load(cls: type[T], path: Path | str | None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from a YAML file (or only defaults when ``path`` is None) and overrides."""
    data, origins = read_yaml(path) if path is not None else ({}, {})
    data = apply_overrides(data, overrides, origins)
    return build(cls, data, origins, source=str(path) if path is not None else "<defaults>")
