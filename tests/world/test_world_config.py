"""WorldConfig: defaults build, rules and cross-field checks name the key and the fix."""

from __future__ import annotations

import pytest

from ouro_ray.config.fields import ConfigError, build, explain
from ouro_ray.world import TinyModelConfig, WorldConfig


def test_defaults_build_and_every_field_is_documented() -> None:
    cfg = build(WorldConfig, {})
    assert cfg == WorldConfig()
    rows = explain(WorldConfig)
    assert {"corpus.n_dialogs", "model.arch", "model.hidden_size", "pretrain.steps", "cache_dir"} <= {r.key for r in rows}
    assert all(r.doc for r in rows)


def test_arch_is_a_choice() -> None:
    with pytest.raises(ConfigError, match="model.arch = 'gpt5'.*'llama', 'qwen2'"):
        build(WorldConfig, {"model": {"arch": "gpt5"}})


def test_rates_are_bounded() -> None:
    with pytest.raises(ConfigError, match="corpus.refusal_rate = 1.5: must be >= 0.0 and <= 1.0"):
        build(WorldConfig, {"corpus": {"refusal_rate": 1.5}})


@pytest.mark.parametrize(
    "model, key",
    [
        ({"hidden_size": 100, "num_heads": 3, "num_kv_heads": 1}, "world.model.num_heads"),  # 100 % 3 != 0
        ({"hidden_size": 96, "num_heads": 32, "num_kv_heads": 1}, "world.model.num_heads"),  # head size 3: odd
        ({"num_heads": 4, "num_kv_heads": 3}, "world.model.num_kv_heads"),  # 4 % 3 != 0
    ],
)
def test_cross_field_checks_name_the_key(model: dict, key: str) -> None:
    keys = [k for k, _ in WorldConfig(model=TinyModelConfig(**model)).checks()]
    assert keys == [key]


def test_warmup_must_fit_in_steps() -> None:
    with pytest.raises(ConfigError, match="world.pretrain.warmup_steps = 50: must be below"):
        build(WorldConfig, {"pretrain": {"steps": 10, "warmup_steps": 50}})


def test_default_config_has_no_cross_field_problems() -> None:
    assert WorldConfig().checks() == []
