"""YAML files plus ``a.b=c`` command-line overrides → a validated, frozen config object.

Each key's origin (``FILE:LINE`` or ``override 'a.b=c'``) is tracked so every error says where the
bad value came from. YAML's silent last-one-wins on duplicate keys is refused. Whatever the file's bytes,
the loader returns a config or raises :class:`ConfigError`: text that is not UTF-8 or not YAML, values
YAML cannot construct (``2001-02-30``), nesting too deep for the parser, and aliases that refer to
themselves or expand past :data:`MAX_VALUES` values (a "billion laughs") are all problems with a place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from ouro_ray.config.fields import ConfigError, build

T = TypeVar("T")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_VALUES = 100_000
"""Most values a config file or override may stand for, each use of a YAML alias counting its whole anchor;
the shipped configs hold a few hundred."""
_YAML_FIX = "fix: correct the YAML there (quote a value that is meant as a string)"
_INT_TAG = "tag:yaml.org,2002:int"
# Longest whole number a config may spell. Python parses at most 4300 decimal digits, but hex, octal and 1:2:3
# numbers escape that limit, and then every message showing the value fails; 3000 hex digits still print.
_MAX_DIGITS = 3000


class _Unbounded(Exception):
    """A YAML node graph that is recursive or too large once aliases are expanded: ``problem`` at ``node``."""

    def __init__(self, node: yaml.Node, problem: str):
        super().__init__(problem)
        self.node, self.problem = node, problem


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded; linear in the distinct nodes. Also refuses
    a whole number too long for Python to print (every message showing it would fail)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise _Unbounded(node, "a YAML alias inside its own anchor makes an endless value; fix: remove the *alias "
                               "from inside the &anchor it names")
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT_TAG and len(node.value) > _MAX_DIGITS:
            raise _Unbounded(node, f"a whole number of more than {_MAX_DIGITS} digits; fix: use a smaller number")
        return 1
    open_.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_)
        if total > MAX_VALUES:
            raise _Unbounded(node, f"this value stands for more than {MAX_VALUES} values once its YAML aliases are "
                                   "expanded; fix: write the values out, or alias fewer and smaller pieces")
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """(node graph, data) of one YAML document, the graph bounded before anything walks or copies it.
    Raises yaml.YAMLError, _Unbounded, ValueError/OverflowError (a scalar YAML cannot construct), RecursionError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, {}, set())
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _unconstructible(node: yaml.Node) -> yaml.Node | None:
    """The first scalar of a (bounded) graph that YAML cannot construct, to name its line."""
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode):
            try:
                yaml.SafeLoader("").construct_object(n)
            except (ValueError, OverflowError, yaml.YAMLError):
                return n
        else:
            stack += reversed(n.value if isinstance(n, yaml.SequenceNode) else [x for pair in n.value for x in pair])
    return None


def _line(text: str, mark: yaml.Mark) -> int:
    """The line of ``mark`` counted at "\\n" only, as editors and `sed -n Np` count; YAML's own count also breaks
    lines at \\r, U+0085 and U+2028, and would point elsewhere."""
    return text.count("\n", 0, mark.index) + 1


def _walk(node: yaml.Node, prefix: str, filename: str, origins: dict[str, str], problems: list[str],
          text: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
        where = f"{filename}:{_line(text, key_node.start_mark)}"
        if key in seen:
            problems.append(f"{where}: duplicate key {key!r} (first at {origins[key]}); fix: keep one of them")
        seen.add(key)
        origins.setdefault(key, where)
        _walk(value_node, key, filename, origins, problems, text)


def read_yaml(path: Path | str) -> tuple[dict[str, Any], dict[str, str]]:
    """A YAML mapping and the ``FILE:LINE`` of each dotted key in it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such config file; fix: pass a path such as configs/tiny.yaml"])
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); fix: save the file as "
                           "UTF-8"]) from None
    try:
        node, data = _parse(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([f"{path}:{line}: not valid YAML: character U+{exc.character:04X} is not allowed; "
                           "fix: remove it"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{_line(text, mark)}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}; {_YAML_FIX}"]) from None
    except _Unbounded as exc:
        raise ConfigError([f"{path}:{_line(text, exc.node.start_mark)}: {exc.problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply to read; fix: flatten the nesting"]) from None
    except (ValueError, OverflowError) as exc:  # a scalar the constructor rejects: 2001-02-30, !!int abc, 5000 digits
        bad = _unconstructible(yaml.compose(text, Loader=yaml.SafeLoader))
        where = f"{path}:{_line(text, bad.start_mark)}" if bad is not None else str(path)
        raise ConfigError([f"{where}: not valid YAML: {exc}; {_YAML_FIX}"]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:{_line(text, node.start_mark)}: the config must be a mapping of keys, got "
                           f"{type(data).__name__}; fix: write `key: value` lines at the top level, as in configs/tiny.yaml"])
    origins: dict[str, str] = {}
    problems: list[str] = []
    _walk(node, "", str(path), origins, problems, text)
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
            problems.append(f"override {arg!r}: expected KEY=VALUE with a dotted key; fix: write it as e.g. seed=3 or "
                            "world.model.num_layers=2")
            continue
        try:
            value = _parse(raw)[1] if raw.strip() else None
        except _Unbounded as exc:
            problems.append(f"override {arg!r}: {exc.problem}")
            continue
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
            value = raw  # an unparseable scalar is taken as the literal string the user typed
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            origins.setdefault(".".join(parts[: i + 1]), f"override {arg!r}")
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                section = ".".join(parts[: i + 1])
                problems.append(f"override {arg!r}: {section} is a value, not a section; fix: override {section} "
                                f"itself ({section}=...)")
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
