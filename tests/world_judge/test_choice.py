"""The policy never judges itself by default: `auto` picks the world's judge, any other policy must name one."""

from __future__ import annotations

import pytest

from ouro_ray.config import ConfigError, load_config
from ouro_ray.loop.run import check_run_config
from ouro_ray.world_judge.choice import is_tiny_world, resolve_judges


def test_an_hf_policy_with_no_judge_configured_stops_naming_the_key_and_the_choices(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(ConfigError) as err:
        check_run_config(load_config(None, [f"model.path={model}", "distill.use_ai=false"]))
    message = str(err.value)
    assert "judges.llm.model = 'auto'" in message
    assert "judge model directory" in message and "judges.http.base_url" in message
    assert "judges.llm.enabled=false" in message  # rules only
    # each way out is accepted
    check_run_config(load_config(None, [f"model.path={model}", "distill.use_ai=false", "judges.llm.enabled=false"]))
    check_run_config(load_config(None, [f"model.path={model}", "distill.use_ai=false", f"judges.llm.model={model}"]))


def test_the_tiny_world_gets_its_own_judge_never_the_policy(tiny_world):
    cfg = load_config(None, [f"model.path={tiny_world.model_dir}"])
    check_run_config(cfg)  # a world's model directory is the tiny world: auto has a judge
    assert cfg.judges.llm.model == "auto"
    assert is_tiny_world(tiny_world.model_dir) and is_tiny_world("tiny-world")
    resolved = resolve_judges(cfg, str(tiny_world.model_dir))
    assert resolved.llm.model == str(tiny_world.root / "judge") != str(tiny_world.model_dir)
    assert resolve_judges(load_config(None, ["judges.llm.model=policy"]), "/p").llm.model == "/p"  # only when asked


def test_the_world_judge_must_exist_for_auto():
    with pytest.raises(ConfigError, match="world.judge.enabled = false"):
        check_run_config(load_config(None, ["world.judge.enabled=false"]))


def test_a_judge_built_on_demand_reports_its_progress(tiny_world):
    """With no judge beside the policy, 'auto' builds (here: finds in the cache) the world's judge and says so."""
    import dataclasses

    from _tiny import SEED, small_world_config

    cfg = dataclasses.replace(load_config(None, [f"seed={SEED}"]), world=small_world_config(tiny_world.root.parent))
    said = []
    resolved = resolve_judges(cfg, "tiny-world", said.append)
    assert resolved.llm.model == str(tiny_world.root / "judge")
    assert any(m.startswith("world judge") and "cache hit" in m for m in said), said
