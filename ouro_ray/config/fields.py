"""Typed, frozen config objects built from YAML plus `a.b=c` overrides, validated up front.

Every config class is a frozen dataclass whose fields are declared with :func:`param`, which carries
the field's one-line doc and its rule (range or choices). :func:`build` turns a nested mapping into
such an object and collects *every* problem before raising one :class:`ConfigError`, each line naming
where the value came from (``FILE:LINE`` or the override), the dotted key, the value, the rule and
the fix. Unknown keys get a near-miss suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """One or more invalid config values; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n  " + "\n  ".join(problems))


def param(
    default: Any = _MISSING,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    factory: Any = _MISSING,
) -> Any:
    """A config field with its doc and numeric bounds (choices come from a ``Literal`` type)."""
    if not doc:
        raise TypeError("every config field needs a one-line doc")
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if factory is not _MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldInfo:
    """What ``ouro config --explain`` prints for one leaf field."""

    key: str
    type_name: str
    default: Any
    rule: str
    doc: str


# ---------------------------------------------------------------- type helpers


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin is Literal:
        name = " | ".join(repr(a) for a in typing.get_args(inner))
    elif origin in (tuple, list):
        name = f"list of {type_name(typing.get_args(inner)[0])}"
    elif origin is dict:
        key_tp, value_tp = typing.get_args(inner)
        name = f"mapping of {type_name(key_tp)} to {type_name(value_tp)}"
    elif _is_dataclass_type(inner):
        name = "section"
    else:
        name = _PLAIN_NAMES.get(inner, getattr(inner, "__name__", str(inner)))
    return f"{name} or null" if optional else name


_PLAIN_NAMES = {int: "whole number", float: "number", str: "string", bool: "true/false"}


def _rule_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]}")
    return " and ".join(parts)


# ---------------------------------------------------------------- building


class _Where:
    """Maps a dotted key to where its value came from (``FILE:LINE`` or an override)."""

    def __init__(self, origins: Mapping[str, str], default: str):
        self.origins = origins
        self.default = default

    def __call__(self, key: str) -> str:
        probe = key
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = probe.rpartition(".")[0]
        return self.default


def _check_leaf(tp: Any, value: Any, key: str, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Return (converted value, problem or None) for one non-section field."""
    inner, optional = _unwrap_optional(tp)
    if value is None:
        return (None, None) if optional else (None, f"{key} = null: a value is required ({type_name(tp)})")
    origin = typing.get_origin(inner)
    if origin is Literal:
        choices = typing.get_args(inner)
        if value in choices:
            return value, None
        near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return value, f"{key} = {value!r}: must be one of {', '.join(map(repr, choices))}{hint}"
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return value, f"{key} = {value!r}: must be a list of {type_name(typing.get_args(inner)[0])}; fix: write [a, b]"
        item_tp = typing.get_args(inner)[0]
        out = []
        for i, item in enumerate(value):
            conv, problem = _check_leaf(item_tp, item, f"{key}[{i}]", {})
            if problem:
                return value, problem
            out.append(conv)
        return tuple(out), None
    if origin is dict:
        return _check_mapping(inner, value, key, meta)
    if inner is bool:
        if isinstance(value, bool):
            return value, None
        return value, f"{key} = {value!r}: must be true or false"
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, f"{key} = {value!r}: must be a whole number"
    elif inner is float:
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string; it is a number to anyone else
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"{key} = {value!r}: must be a number"
        if isinstance(value, int) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            return value, f"{key} = {value!r:.40}…: too large for a number"
        value = float(value)
        if not math.isfinite(value):  # NaN passes no range rule, yet fails no comparison either
            return value, f"{key} = {value!r}: must be a finite number"
    elif inner is str:
        if not isinstance(value, str):
            return value, f"{key} = {value!r}: must be a string (quote it in YAML)"
    rule = _rule_text(meta)
    if rule and not _in_range(value, meta):
        return value, f"{key} = {value!r}: must be {rule}"
    return value, None


# One way to match each number: `\d+\.?\d*` split digits between two runs and backtracked for minutes on a long
# digit string that ends in a letter.
_FLOAT_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FLOAT_MAX = int(sys.float_info.max)


def _check_mapping(tp: Any, value: Any, key: str, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A ``dict[K, V]`` leaf: every key and value checked, the bounds applying to the values."""
    if not isinstance(value, Mapping):
        return value, f"{key} = {value!r}: must be a {type_name(tp)}; fix: write {{name: value}}"
    key_tp, value_tp = typing.get_args(tp)
    out = {}
    for k, v in value.items():
        conv_k, problem = _check_leaf(key_tp, k, f"{key} key {k!r}", {})
        if problem is None:
            out[conv_k], problem = _check_leaf(value_tp, v, f"{key}.{k}", meta)
        if problem:
            return value, problem
    return out, None


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    return not (
        (meta.get("ge") is not None and value < meta["ge"])
        or (meta.get("gt") is not None and value <= meta["gt"])
        or (meta.get("le") is not None and value > meta["le"])
        or (meta.get("lt") is not None and value >= meta["lt"])
    )


def _build(cls: type, data: Mapping[str, Any], prefix: str, where: _Where, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, Mapping):
        problems.append(f"{where(prefix)}: {prefix or 'config'} = {data!r:.200}: must be a mapping of keys; fix: write "
                        f"{prefix or 'the config'} as `key: value` lines (valid keys: {', '.join(fields)})")
        return None
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            full = f"{prefix}.{key}" if prefix else str(key)
            hint = f" (did you mean {(prefix + '.' if prefix else '') + near[0]!r}?)" if near else ""
            problems.append(
                f"{where(full)}: unknown key {full!r}{hint}; fix: rename or remove it "
                f"(valid here: {', '.join(fields)})"
            )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        full = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        sub_cls, _ = _unwrap_optional(tp)
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:  # type: ignore[misc]
                problems.append(f"{where(prefix)}: missing required key {full!r} ({f.metadata.get('doc', '')}); "
                                f"fix: add {full}")
            continue
        if _is_dataclass_type(sub_cls) and data[name] is not None:
            kwargs[name] = _build(sub_cls, data[name], full, where, problems)
            continue
        value, problem = _check_leaf(tp, data[name], full, f.metadata)
        if problem:
            problems.append(f"{where(full)}: {problem}; fix: {_fix_hint(full, tp, f.metadata)}")
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a missing nested value already reported above
        if not problems:
            problems.append(f"{where(prefix)}: {prefix or 'config'}: {exc}")
        return None
    checks = getattr(obj, "checks", None)
    if callable(checks) and not problems:
        for key, message in checks():
            problems.append(f"{where(key)}: {message}")
    return obj


def _fix_hint(key: str, tp: Any, meta: Mapping[str, Any]) -> str:
    rule = _rule_text(meta)
    doc = meta.get("doc", "")
    want = type_name(tp) + (f" {rule}" if rule else "")
    return f"set {key} to {want} ({doc})" if doc else f"set {key} to {want}"


def build(cls: type, data: Mapping[str, Any], origins: Mapping[str, str] | None = None, source: str = "<config>") -> Any:
    """Build a frozen ``cls`` from nested ``data``; raise ConfigError listing every problem."""
    problems: list[str] = []
    obj = _build(cls, data, "", _Where(origins or {}, source), problems)
    if problems:
        raise ConfigError(problems)
    return obj


# ---------------------------------------------------------------- introspection


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain nested dict of a config object (tuples become lists), ready for YAML or JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def explain(cls: type, prefix: str = "") -> list[FieldInfo]:
    """Every leaf field of ``cls`` with its type, default, rule and doc, in declaration order."""
    hints = typing.get_type_hints(cls)
    rows: list[FieldInfo] = []
    for f in dataclasses.fields(cls):
        full = f"{prefix}.{f.name}" if prefix else f.name
        sub_cls, _ = _unwrap_optional(hints[f.name])
        if _is_dataclass_type(sub_cls):
            rows.extend(explain(sub_cls, full))
            continue
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else "(required)"  # type: ignore[misc]
        )
        rows.append(FieldInfo(full, type_name(hints[f.name]), default, _rule_text(f.metadata), f.metadata.get("doc", "")))
    return rows
