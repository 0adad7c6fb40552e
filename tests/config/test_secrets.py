"""A literal API key never reaches a file or a printout: RUN_DIR/config.yaml, the safety report, `ouro config`
and compare.json show it redacted; api_key_env keeps it out of every file; a redacted key is refused on
load with the fix."""

from __future__ import annotations

import pytest
import yaml

from ouro_ray.config import ConfigError, load_config, public_dict
from ouro_ray.config.judges import REDACTED, redact_overrides

KEY = "sk-test-0123456789abcdef"


def test_a_literal_key_is_redacted_everywhere_a_config_is_written(tmp_path):
    from ouro_ray.loop.run import open_run

    cfg, run = open_run(None, [f"judges.http.api_key={KEY}", "judges.http.base_url=http://127.0.0.1:9"],
                        str(tmp_path / "run"), None)
    assert cfg.judges.http.key_source == KEY  # the run itself uses the key
    written = (run.path / "config.yaml").read_text()
    assert KEY not in written and yaml.safe_load(written)["judges"]["http"]["api_key"] == REDACTED
    assert public_dict(cfg)["judges"]["http"]["api_key"] == REDACTED
    with pytest.raises(ConfigError, match="was redacted when this config was written.*pass it again"):
        open_run(None, [], None, str(run.path))  # resume without the key
    cfg, _ = open_run(None, [f"judges.http.api_key={KEY}"], None, str(run.path))  # resume, key passed again
    assert cfg.judges.http.key_source == KEY and KEY not in (run.path / "config.yaml").read_text()
    assert redact_overrides([f"judges.http.api_key={KEY}", "rounds=2", "judges.http.api_key=env:K"]) == [
        f"judges.http.api_key={REDACTED}", "rounds=2", "judges.http.api_key=env:K"]


def test_api_key_env_and_env_references_are_kept_and_both_at_once_refused():
    cfg = load_config(None, ["judges.http.api_key_env=OURO_KEY"])
    assert cfg.judges.http.key_source == "env:OURO_KEY" and public_dict(cfg)["judges"]["http"]["api_key_env"] == "OURO_KEY"
    assert public_dict(load_config(None, ["judges.http.api_key=env:K"]))["judges"]["http"]["api_key"] == "env:K"
    with pytest.raises(ConfigError, match="api_key and api_key_env are both set"):
        load_config(None, [f"judges.http.api_key={KEY}", "judges.http.api_key_env=K"])


def test_ouro_config_prints_the_key_redacted(capsys):
    from ouro_ray.cli import main

    assert main(["config", f"judges.http.api_key={KEY}"]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and f"api_key: {REDACTED}" in out


def test_the_http_judge_reads_its_key_from_api_key_env(monkeypatch):
    from actors.judge_worker import build_judges
    from ouro_ray.judges.http import HTTPJudge

    monkeypatch.setenv("OURO_TEST_KEY", KEY)
    cfg = load_config(None, ["judges.http.base_url=http://127.0.0.1:9", "judges.http.model=m",
                             "judges.http.api_key_env=OURO_TEST_KEY", "judges.llm.enabled=false",
                             "judges.constitution.enabled=false", "judges.rules=[]"])
    judges, _ = build_judges(cfg.judges, None)
    assert [j._api_key for j in judges if isinstance(j, HTTPJudge)] == [KEY]
