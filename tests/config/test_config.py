"""Config: YAML + overrides into frozen typed objects; every bad value named with origin, rule, fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _paths import REPO

from ouro_ray.config import ConfigError, OuroConfig, explain, load_config, to_dict


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_load() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert isinstance(cfg, OuroConfig)


def test_overrides_in_the_seeds_form_take_effect(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\nworld:\n  model:\n    num_layers: 3\n")
    cfg = load_config(path, ["seed=7", "world.model.num_layers=2", "world.pretrain.lr=0.005", "cluster.address=auto"])
    assert (cfg.seed, cfg.world.model.num_layers, cfg.world.pretrain.lr, cfg.cluster.address) == (7, 2, 0.005, "auto")


def test_config_is_frozen() -> None:
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_unknown_key_names_file_line_and_near_miss(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\nwrold:\n  x: 1\ncluster:\n  dashbord: false\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert f"{path}:2: unknown key 'wrold' (did you mean 'world'?)" in text
    assert f"{path}:5: unknown key 'cluster.dashbord' (did you mean 'cluster.dashboard'?)" in text


def test_wrong_type_and_out_of_range_name_key_value_rule_and_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, "world:\n  pretrain:\n    lr: 2\n    steps: ten\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["seed=-1"])
    problems = err.value.problems
    assert len(problems) == 3  # every problem at once, not the first only
    lr = next(p for p in problems if "world.pretrain.lr" in p)
    assert lr.startswith(f"{path}:3: world.pretrain.lr = 2.0: must be > 0.0 and < 1.0; fix: set world.pretrain.lr")
    steps = next(p for p in problems if "steps" in p)
    assert "'ten': must be a whole number" in steps
    seed = next(p for p in problems if p.startswith("override 'seed=-1'"))
    assert "seed = -1: must be >= 0" in seed
    with pytest.raises(ConfigError, match=r"seed = 4294967296: must be >= 0 and <= 4294967295"):  # numpy seeds are 32-bit
        load_config(None, ["seed=4294967296"])
    assert load_config(None, ["seed=4294967295"]).seed == 2**32 - 1


def test_choice_suggests_the_near_value() -> None:
    expected = r"world.model.arch = 'lama': must be one of 'llama', 'qwen2' \(did you mean 'llama'\?\)"
    with pytest.raises(ConfigError, match=expected):
        load_config(None, ["world.model.arch=lama"])


def test_bool_is_not_a_number_and_a_number_is_not_a_bool() -> None:
    with pytest.raises(ConfigError, match="seed = True: must be a whole number"):
        load_config(None, ["seed=true"])
    with pytest.raises(ConfigError, match="cluster.dashboard = 1: must be true or false"):
        load_config(None, ["cluster.dashboard=1"])


def test_cross_field_check_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="world.model.num_heads"):
        load_config(None, ["world.model.hidden_size=30", "world.model.num_heads=4"])


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: duplicate key 'seed' \(first at {path}:1\)"):
        load_config(path)


def test_malformed_override_and_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["9seed=1"])
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        load_config(_write(tmp_path, "seed: 1\n"), ["seed.x=1"])
    with pytest.raises(ConfigError, match=r"override 'seed.x=1': seed = \{'x': 1\}: must be a whole number"):
        load_config(None, ["seed.x=1"])
    path = _write(tmp_path, "seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict_is_identity() -> None:
    from ouro_ray.config import build

    cfg = load_config(None, ["seed=4", "world.model.arch=qwen2"])
    assert build(OuroConfig, to_dict(cfg)) == cfg


def test_every_field_has_a_doc() -> None:
    rows = explain(OuroConfig)
    assert len(rows) > 20
    assert all(row.doc for row in rows)
    assert {"seed", "world.model.hidden_size", "cluster.address"} <= {row.key for row in rows}
