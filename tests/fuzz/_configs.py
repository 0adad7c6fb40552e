"""Strategies and the oracle for fuzzing the config loader (``ouro_ray/config/loader.py``, ``fields.py``).

The contract: ``load_config(path, overrides)`` returns a valid :class:`OuroConfig`, or raises
:class:`ConfigError` whose every problem names where it came from (``FILE``, ``FILE:LINE`` or
``override 'a.b=c'``) and the fix; never another exception type, and never after unbounded work (an
alias bomb of a few hundred bytes must not expand to a billion values).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import yaml
from _paths import REPO
from hypothesis import strategies as st

from ouro_ray.config import ConfigError, OuroConfig, explain, load_config, to_dict

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
LEAF_KEYS = [row.key for row in explain(OuroConfig)]
SECTION_KEYS = sorted({k.rsplit(".", 1)[0] for k in LEAF_KEYS if "." in k})

# ---------------------------------------------------------------- text-level corruption

# YAML that parses badly, constructs badly (a date that does not exist, !!int of a word, a number too long
# for Python's int parser), nests deeply, refers to an undefined alias, asks for Python objects, or is
# merely a surprising scalar.
YAML_SNIPPETS = [
    "\t", "- ", ": ", "&a ", "*a", "*undefined", "!!int abc", "!!float x", "!!python/object:os.system ''",
    "!!binary '???'", "<<: *a", "? [a, b]\n: 1", "2001-02-30", "2001-02-03", "1" * 5000, "[" * 600,
    "{" * 400 + "}" * 400, "[" * 200 + "]" * 200, "{a: 1, a: 2}", "%YAML 1.1\n---", "---\n", "...", "'unterminated",
    '"\\x"', "key: value: other", "{{", "!!set {a, b}", "!!omap [a]", ".nan", ".inf", "-.inf", "0x1F", "0o17",
    "1_000", "~", "null", "yes", "no", "on", "1e-4", "1e999", "1" + "0" * 400, "-" + "9" * 30, "!!str", "!custom x",
    "\ufeff", "\x00", "\x85", "\u2028", "a: &x {b: *x}", "&r [*r]", "0x" + "f" * 4000, ":".join(["59"] * 3000),
]


@st.composite
def insert_snippet(draw: st.DrawFn, text: bytes) -> bytes:
    lines = text.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    col = draw(st.integers(0, len(lines[i])))
    snippet = draw(st.sampled_from(YAML_SNIPPETS)).encode("utf-8")
    lines[i] = lines[i][:col] + snippet + lines[i][col:]
    return b"\n".join(lines)


# ---------------------------------------------------------------- structure-level corruption

_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.sampled_from([10**400, -(2**63)])
    | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def deep(depth: int, mapping: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if mapping else [value]
    return value


yaml_values = _YAML_VALUES | st.builds(deep, st.integers(20, 80), st.booleans())


def _key_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out += _key_paths(v, prefix + (k,))
    return out


def _at(data: dict, path: tuple) -> dict:
    for k in path[:-1]:
        data = data[k]
    return data


@st.composite
def corrupt_structure(draw: st.DrawFn, data: Any) -> Any:
    """One edit of a parsed config: a value replaced (wrong type, NaN, huge, deep), a key deleted or
    misspelt, an unknown key added, or the whole config replaced by a non-mapping."""
    op = draw(st.sampled_from(["set", "set", "set", "delete", "rename", "add", "top"]))
    paths = _key_paths(data)
    if op == "top" or not paths:
        return draw(st.lists(yaml_values, max_size=2) | yaml_values)
    path = draw(st.sampled_from(paths))
    parent = _at(data, path)
    if op == "set":
        parent[path[-1]] = draw(yaml_values)
    elif op == "delete":
        del parent[path[-1]]
    elif op == "rename":
        parent[f"{path[-1]}s"] = parent.pop(path[-1])
    else:
        parent[draw(st.sampled_from(["extra", "seeds", "workers"]) | st.text(max_size=6))] = draw(yaml_values)
    return data


def dump(data: Any, allow_unicode: bool) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=allow_unicode).encode("utf-8")


# ---------------------------------------------------------------- alias bombs


def alias_bomb(levels: int, fan: int, mapping: bool, target: str, flow: bool = False) -> str:
    """YAML whose last anchor stands for ``fan ** levels`` values (a "billion laughs" in a few hundred bytes),
    used as the value of ``target`` (a dotted key). ``flow``: one line, for an override's value."""
    def node(items: list[str]) -> str:
        if mapping:
            return "{" + ", ".join(f"k{i}: {v}" for i, v in enumerate(items)) + "}"
        return "[" + ", ".join(items) + "]"

    anchors = [f"&b0 {node(['lol'] * fan)}"]
    anchors += [f"&b{n} {node([f'*b{n - 1}'] * fan)}" for n in range(1, levels)]
    if flow:
        return "[" + ", ".join(anchors) + f", *b{levels - 1}]"
    lines = [f"bomb{n}: {a}" for n, a in enumerate(anchors)]
    *sections, leaf = target.split(".")
    for depth, section in enumerate(sections):
        lines.append("  " * depth + f"{section}:")
    lines.append("  " * len(sections) + f"{leaf}: *b{levels - 1}")
    return "\n".join(lines) + "\n"


def recursive_alias(mapping: bool, target: str) -> str:
    *sections, leaf = target.split(".")
    lines = ["loop: &r {again: *r}" if mapping else "loop: &r [*r]"]
    lines += ["  " * depth + f"{s}:" for depth, s in enumerate(sections)]
    return "\n".join(lines + ["  " * len(sections) + f"{leaf}: *r"]) + "\n"


# ---------------------------------------------------------------- overrides

OVERRIDE_VALUES = [
    "", "0", "-1", "3", "0.5", "1e-4", "1e999", ".nan", "-.inf", "true", "null", "~", "[a, b]", "[]", "{}", "{a: 1}",
    "[", "{", "]", ": ", "a: b", "- x", "'quoted'", '"dq', "2001-02-30", "!!int abc", "1" * 5000, "[" * 600,
    "&a [*a]", "*undefined", "auto", "tiny-world", "sync", "async", "dpo", "ppo", "rules", "=", "a=b", "0x" + "f" * 4000,
    "[0x" + "f" * 4000 + "]",
]


def _typo(key: str) -> st.SearchStrategy[str]:
    return st.sampled_from([key + "s", key[:-1], key.replace(".", "_"), key.upper(), key + ".x", "x." + key])


override_keys = (
    st.sampled_from(LEAF_KEYS) | st.sampled_from(SECTION_KEYS) | st.sampled_from(LEAF_KEYS).flatmap(_typo)
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}(\.[A-Za-z_][A-Za-z0-9_]{0,6}){0,2}", fullmatch=True)
    | st.sampled_from(["", " ", "a..b", "1a", "a.b.", ".a", "-x", "a b", "a-b", "é"])
)
overrides = st.builds(
    lambda key, sep, value: f"{key}{sep}{value}",
    override_keys,
    st.sampled_from(["=", "=", "=", "", " = ", "=="]),
    st.sampled_from(OVERRIDE_VALUES) | st.text(max_size=12)
    | st.builds(alias_bomb, st.integers(2, 7), st.integers(2, 9), st.booleans(), st.just("x"), st.just(True)),
)

# ---------------------------------------------------------------- the oracle

_LINE = re.compile(r":(\d+):")


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _floats(v)]
    return []


def check_load(path: Path | None, overrides: Sequence[str] = (), text: bytes | None = None) -> OuroConfig | None:
    """Load; a valid config holds only finite numbers; an error names FILE[:LINE] or the override, and a fix."""
    try:
        cfg = load_config(path, overrides)
    except ConfigError as err:
        assert err.problems, "a ConfigError without problems"
        assert str(err) == "invalid config:\n  " + "\n  ".join(err.problems)
        sources = ([f"{path}:", f"{path} "] if path is not None else ["<defaults>:"]) + ["override '", 'override "']
        for problem in err.problems:
            assert any(problem.startswith(s) for s in sources), f"problem not located: {problem[:300]!r}"
            assert "fix" in problem, f"problem without a fix: {problem[:300]!r}"
            line = _LINE.match(problem, len(str(path))) if path is not None and problem.startswith(f"{path}:") else None
            if line and text is not None:
                assert 1 <= int(line.group(1)) <= text.count(b"\n") + 1, f"line out of the file: {problem[:200]!r}"
        return None
    assert isinstance(cfg, OuroConfig)
    assert all(math.isfinite(f) for f in _floats(to_dict(cfg))), "a valid config holding NaN or infinity"
    return cfg

