"""Each bug the config fuzzers found, kept as an explicit example (``test_fuzz_config.py`` found them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fuzz._configs import alias_bomb, check_load

from ouro_ray.config import ConfigError, load_config


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "run.yaml"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _only_problem(path: Path | None, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides or [])
    [problem] = err.value.problems
    check_load(path, overrides or [])  # the fuzzers' oracle agrees: located, with a fix
    return problem


def test_a_config_that_is_not_utf8_names_file_line(tmp_path: Path) -> None:
    # was: UnicodeDecodeError
    path = _write(tmp_path, b"seed: 1\nmodel:\n  path: caf\xe9\n")
    assert _only_problem(path) == f"{path}:3: not valid UTF-8 (byte 0xe9); fix: save the file as UTF-8"


@pytest.mark.parametrize("value", ["2001-02-30", "!!int abc", "!!float x"])
def test_a_scalar_yaml_cannot_construct_names_its_line(tmp_path: Path, value: str) -> None:
    # was: ValueError (day is out of range for month, invalid literal for int(), Exceeds the limit ...)
    path = _write(tmp_path, f"seed: 1\nrounds: {value}\n")
    assert _only_problem(path).startswith(f"{path}:2: not valid YAML: ")


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    # was: RecursionError
    path = _write(tmp_path, "seed: " + "[" * 5000 + "\n")
    assert _only_problem(path).startswith(f"{path}: not valid YAML: nested too deeply")


@pytest.mark.parametrize("text", ["a: &a {b: *a}\n", "seed: &a [*a]\n", "x: 1\nworld: &w\n  model: *w\n"])
def test_a_recursive_alias_is_refused(tmp_path: Path, text: str) -> None:
    # was: RecursionError (walking the keys, copying, or printing the value)
    path = _write(tmp_path, text)
    assert "a YAML alias inside its own anchor makes an endless value" in _only_problem(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mapping", [True, False])
def test_an_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path, mapping: bool) -> None:
    # was: a 400-byte file standing for 10**9 values: key walking (mappings) or copying (lists) ran for hours
    path = _write(tmp_path, alias_bomb(9, 10, mapping, "judges.rules"))
    start = time.process_time()
    problem = _only_problem(path)
    assert time.process_time() - start < 5
    assert "stands for more than 100000 values once its YAML aliases are expanded" in problem
    with pytest.raises(ConfigError, match="stands for more than 100000 values"):
        load_config(None, ["judges.rules=" + alias_bomb(9, 10, mapping, "x", flow=True)])


def test_an_integer_too_large_for_a_number_is_a_config_error(tmp_path: Path) -> None:
    # was: OverflowError (int too large to convert to float)
    path = _write(tmp_path, "world:\n  pretrain:\n    lr: 1" + "0" * 400 + "\n")
    assert "world.pretrain.lr = 1000000000000000000000000000000000000000…: too large for a number" in _only_problem(path)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999"])
def test_nan_and_infinity_are_refused_for_numbers(value: str) -> None:
    # was: NaN passed every range rule (NaN >= 0 is False, and so is NaN < 0); inf passed open-ended ones
    assert "world.pretrain.lr = " in _only_problem(None, [f"world.pretrain.lr={value}"])
    assert "must be a finite number" in _only_problem(None, [f"learner.dpo.beta={value}"])


@pytest.mark.parametrize("value", ["2001-02-30", "[" * 5000, "!!int abc"])
def test_an_unparseable_override_value_is_the_string_typed(value: str) -> None:
    # was: ValueError / RecursionError from the override parser
    problem = _only_problem(None, [f"seed={value}"])
    assert problem.startswith(f"override 'seed={value}': seed = ") and "must be a whole number" in problem


@pytest.mark.timeout(60)
def test_a_long_digit_string_at_a_number_key_is_refused_quickly() -> None:
    # was: _FLOAT_RE backtracked in cubic time: 16,000 digits and a letter took 47 s
    start = time.process_time()
    problem = _only_problem(None, ["world.pretrain.lr=" + "1" * 20_000 + "x"])
    assert time.process_time() - start < 5 and "must be a number" in problem


def test_every_loader_message_has_a_fix(tmp_path: Path) -> None:
    # was: no "fix" for YAML syntax errors, a non-mapping config, bad override syntax, a value used as a section
    assert "fix: correct the YAML there" in _only_problem(_write(tmp_path, "seed: [1\n"))
    assert "fix: write `key: value` lines" in _only_problem(_write(tmp_path, "- a\n- b\n"))
    assert "fix: write it as e.g. seed=3" in _only_problem(None, ["9seed=1"])
    assert "fix: override seed itself (seed=...)" in _only_problem(_write(tmp_path, "seed: 1\n"), ["seed.x=1"])
    assert "fix: write cluster as `key: value` lines" in _only_problem(None, ["cluster=3"])


@pytest.mark.parametrize("breaker", ["\r", "\x85", "\u2028"])
def test_lines_are_counted_as_editors_count_them(tmp_path: Path, breaker: str) -> None:
    # was: YAML's own count, which also breaks lines at \r, U+0085 and U+2028, so FILE:LINE pointed below the key
    path = _write(tmp_path, f'model:\n  path: "a{breaker}b"\nsede: 2\n')
    assert _only_problem(path).startswith(f"{path}:3: unknown key 'sede'")


def test_a_forbidden_character_names_its_line(tmp_path: Path) -> None:
    # was: "not valid YAML" at FILE only, with the reader's multi-line message
    path = _write(tmp_path, "seed: 1\nrounds: 2\x00\n")
    assert _only_problem(path) == f"{path}:2: not valid YAML: character U+0000 is not allowed; fix: remove it"


@pytest.mark.parametrize("value", ["1" * 5000, "0x" + "f" * 4000, ":".join(["59"] * 3000), "[0x" + "f" * 4000 + "]"])
def test_a_whole_number_too_long_to_print_is_refused(tmp_path: Path, value: str) -> None:
    # was: ValueError (Exceeds the limit (4300 digits)) constructing a decimal one; hex and 1:2:3 numbers escape
    # that limit, and then every message showing them raised it (or a seed of 16,000 bits passed)
    path = _write(tmp_path, f"seed: 1\nworld:\n  pretrain:\n    lr: {value}\n")
    assert _only_problem(path).startswith(f"{path}:4: a whole number of more than 3000 digits; fix: ")
    assert "a whole number of more than 3000 digits" in _only_problem(None, [f"seed={value}"])
