"""Fuzzing the config loader: corrupted YAML files (bytes, structure, alias bombs) and random ``a.b=c``
overrides give a valid config or a ConfigError naming the file (and line) or the override, and a fix."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from fuzz._configs import (
    CONFIGS,
    alias_bomb,
    check_load,
    corrupt_structure,
    dump,
    insert_snippet,
    overrides,
    recursive_alias,
)
from fuzz._data import corrupt_bytes
from fuzz._profile import examples
from hypothesis import given, settings
from hypothesis import strategies as st

configs = st.sampled_from(CONFIGS)


def _load_text(text: bytes, extra: list[str] | tuple = ()) -> None:
    with tempfile.TemporaryDirectory(prefix="ouro-fuzz-") as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_bytes(text)
        check_load(path, extra, text)


@settings(max_examples=examples(150))
@given(configs, st.data())
def test_corrupted_yaml_bytes_give_a_config_or_a_located_error(base: Path, data: st.DataObject) -> None:
    text = base.read_bytes()
    for _ in range(data.draw(st.integers(1, 3))):
        text = data.draw(st.one_of(corrupt_bytes(text), insert_snippet(text)))
    _load_text(text)


@settings(max_examples=examples(100))
@given(configs, st.data(), st.booleans())
def test_corrupted_yaml_structure_gives_a_config_or_a_located_error(base: Path, data: st.DataObject,
                                                                    allow_unicode: bool) -> None:
    tree = yaml.safe_load(base.read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        tree = data.draw(corrupt_structure(tree))
    _load_text(dump(tree, allow_unicode))


@pytest.mark.timeout(120)  # an unbounded expansion would run for hours: fail instead
@settings(max_examples=examples(20))
@given(st.integers(2, 9), st.integers(2, 9), st.booleans(), st.booleans(),
       st.sampled_from(["seed", "world", "judges.rules", "scoring.lambdas", "extra.key"]))
def test_alias_bombs_and_recursive_aliases_are_refused_quickly(levels: int, fan: int, mapping: bool, recursive: bool,
                                                               target: str) -> None:
    text = recursive_alias(mapping, target) if recursive else alias_bomb(levels, fan, mapping, target)
    _load_text(text.encode("utf-8"))


@pytest.mark.timeout(120)
@settings(max_examples=examples(150))
@given(st.none() | configs, st.lists(overrides, min_size=1, max_size=3))
def test_random_overrides_give_a_config_or_an_error_naming_the_override(base: Path | None, args: list[str]) -> None:
    check_load(base, args)

