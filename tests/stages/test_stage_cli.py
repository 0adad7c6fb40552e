"""``ouro distill`` and ``ouro labyrinth`` on shard files, as the loop's stages 2 and 3 run alone."""

from __future__ import annotations

from _paths import EXAMPLES

from ouro_ray.cli import main
from ouro_ray.data import read_shard


def test_distill_then_labyrinth_write_valid_shards(tmp_path, tiny_model_dir, capsys):
    summaries, prompts = tmp_path / "summaries.jsonl", tmp_path / "labyrinth.parquet"
    dialogs = str(EXAMPLES / "dialogs.jsonl")
    assert main(["distill", dialogs, "--out", str(summaries), f"model.path={tiny_model_dir}"]) == 0
    out = capsys.readouterr().out
    assert "3 summaries" in out and "ai_facts_dropped" in out  # the AI summariser ran, its facts were checked
    table = read_shard(summaries, "summaries").table
    facts = table.column("facts").to_pylist()
    assert table.num_rows == 3 and facts[0] and facts[2] and facts[1] == []  # dialog 2 is a refused harmful request
    assert main(["labyrinth", str(summaries), "--dialogs", dialogs, "--out", str(prompts), "labyrinth.rephrase=1"]) == 0
    lab = read_shard(prompts, "labyrinth").table
    assert set(lab.column("kind").to_pylist()) == {"rephrase", "adversarial", "contrastive"}
    assert "rephrase" in capsys.readouterr().out


def test_bad_input_and_bad_config_fail_with_their_exit_codes(tmp_path, capsys):
    bad = tmp_path / "dialogs.jsonl"
    bad.write_text('{"dialog_id": "d1"}\n')
    assert main(["distill", str(bad), "--out", str(tmp_path / "s.jsonl"), "distill.use_ai=false"]) == 1
    assert f"{bad}:1" in capsys.readouterr().err  # FILE:LINE of the bad record
    assert main(["labyrinth", str(bad), "--dialogs", str(bad), "--out", str(tmp_path / "l.jsonl"),
                 "labyrinth.rephrase=99"]) == 2
    assert "labyrinth.rephrase" in capsys.readouterr().err
