"""The `ouro` command line: exit codes and messages a user relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from _paths import EXAMPLES, REPO

from ouro_ray.cli import main


def test_validate_good_file_exits_0_with_one_line_count(capsys) -> None:
    assert main(["validate", str(EXAMPLES / "dialogs.jsonl"), "--kind", "dialogs"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{EXAMPLES / 'dialogs.jsonl'}: 3 dialogs records OK"]


def test_validate_infers_kind_from_the_file_name(capsys) -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.jsonl"))
    assert main(["validate", *files]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(files)


def test_validate_bad_file_lists_each_bad_record(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt_id":"a","prompt":"p","label":"safe"}\n{"prompt_id":"b","prompt":"","label":"meh"}\n')
    assert main(["validate", str(path), "--kind", "prompts"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: label: 'meh' is not one of safe | unsafe" in err
    assert f"{path}: 1 bad of 2 prompts records" in err


def test_validate_unknown_kind_says_which_exist(tmp_path: Path, capsys) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("{}\n")
    assert main(["validate", str(path)]) == 1
    assert "pass --kind with one of dialogs, summaries" in capsys.readouterr().err


def test_config_prints_the_resolved_config(capsys) -> None:
    assert main(["config", str(REPO / "configs" / "tiny.yaml"), "seed=11", "world.model.num_layers=2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["seed"] == 11 and shown["world"]["model"]["num_layers"] == 2


def test_config_error_exits_2_naming_the_key(capsys) -> None:
    assert main(["config", str(REPO / "configs" / "tiny.yaml"), "world.modle.num_layers=2"]) == 2
    assert "unknown key 'world.modle' (did you mean 'world.model'?)" in capsys.readouterr().err


def test_config_explain_lists_fields_with_docs(capsys) -> None:
    assert main(["config", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "world.model.hidden_size: whole number (>= 8)" in out
    assert "cluster.address: string or null = None" in out


def test_schema_prints_every_kind(capsys) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    for kind in ("dialogs", "summaries", "labyrinth", "candidates", "scores", "pairs", "experience", "prompts"):
        assert f"\n{kind}" in "\n" + out


def test_console_script_is_installed() -> None:
    ouro = Path(sys.executable).parent / "ouro"
    done = subprocess.run([str(ouro), "validate", str(EXAMPLES / "pairs.jsonl")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 pairs records OK" in done.stdout


SMALL_WORLD = ["world.corpus.n_dialogs=60", "world.model.vocab_size=400", "world.model.hidden_size=32",
               "world.model.num_layers=1", "world.model.num_heads=2", "world.model.num_kv_heads=1",
               "world.model.intermediate_size=64", "world.pretrain.steps=5", "world.pretrain.warmup_steps=1",
               "world.judge.model.vocab_size=400", "world.judge.model.hidden_size=32", "world.judge.model.num_layers=1",
               "world.judge.model.num_heads=2", "world.judge.model.num_kv_heads=1",
               "world.judge.model.intermediate_size=64", "world.judge.steps=5", "world.judge.warmup_steps=1",
               "world.judge.batch_size=4", "seed=3"]


def test_tiny_world_builds_into_out_dir_with_overrides_and_says_what_it_made(tmp_path: Path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "world"
    assert main(["tiny-world", str(out), "--config", str(REPO / "configs" / "tiny.yaml"), *SMALL_WORLD]) == 0
    said = capsys.readouterr().out
    assert f"model:     {out / 'model'}" in said and "(60 dialogs)" in said
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["seed"] == 3
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.hidden_size == 32
    # a second run is served from the cache: no pretraining step is printed
    assert main(["tiny-world", str(out), *SMALL_WORLD]) == 0
    assert "pretrain: step" not in capsys.readouterr().out


def test_tiny_world_refuses_a_bad_override_before_building(tmp_path: Path, capsys) -> None:
    assert main(["tiny-world", str(tmp_path / "w"), "world.model.num_heads=3"]) == 2
    assert "world.model.num_heads = 3: must divide world.model.hidden_size = 256" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
