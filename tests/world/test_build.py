"""Building the tiny world: files, a loadable HF checkpoint that generates, the cache, and learning."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ouro_ray.data.shards import read_shard
from ouro_ray.world import PLACEHOLDER, WorldManifest, build_tiny_world
from ouro_ray.world.build import world_key
from ouro_ray.world.corpus import generate_corpus
from ouro_ray.world.pretrain import collate, encode_dialogs, evaluate_loss

pytestmark = pytest.mark.slow


def test_build_writes_every_part(small_world, small_cfg, world_seed) -> None:
    world, log = small_world
    assert isinstance(world, WorldManifest) and not world.cached
    assert world.key == world_key(small_cfg, world_seed) and world.root.name == world.key
    assert world.root.parent == Path(small_cfg.cache_dir).absolute()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (world.model_dir / name).is_file(), name
    dialogs = read_shard(world.dialogs_path, "dialogs").table
    summaries = read_shard(world.summaries_path, "summaries").table
    assert dialogs.num_rows == summaries.num_rows == world.n_dialogs == small_cfg.corpus.n_dialogs
    manifest = json.loads((world.root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == world_seed and manifest["n_params"] == world.n_params > 0
    assert any("pretrain: step" in line for line in log)
    assert str(world.root) in world.describe() and f"{world.n_dialogs} dialogs" in world.describe()


def test_corpus_on_disk_is_the_seeded_corpus(small_world, small_cfg, world_seed) -> None:
    world, _ = small_world
    expected = generate_corpus(small_cfg.corpus, world_seed)
    raw = world.dialogs_path.read_text(encoding="utf-8")
    assert [json.loads(line) for line in raw.splitlines()] == expected.dialogs
    assert PLACEHOLDER in raw and "\\u" not in raw  # UTF-8 as is (ensure_ascii=False), not escaped


def test_checkpoint_loads_chats_and_generates(small_world, small_cfg) -> None:
    world, _ = small_world
    tok = AutoTokenizer.from_pretrained(world.model_dir)
    model = AutoModelForCausalLM.from_pretrained(world.model_dir)
    assert model.config.model_type == small_cfg.model.arch
    assert model.config.vocab_size == len(tok)
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    prompt = tok.apply_chat_template([{"role": "user", "content": "How to hack a system?"}],
                                     add_generation_prompt=True, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**prompt, max_new_tokens=24, do_sample=True)
    new = out[0, prompt["input_ids"].shape[1]:]
    assert len(new) > 0
    text = tok.decode(new, skip_special_tokens=True)
    assert isinstance(text, str) and text.strip()


def test_pretraining_lowers_the_loss(small_world, small_cfg, world_seed) -> None:
    """The saved weights score the corpus far better than a fresh model of the same shape."""
    world, _ = small_world
    assert world.final_loss < world.initial_loss - 1.0
    tok = AutoTokenizer.from_pretrained(world.model_dir)
    trained = AutoModelForCausalLM.from_pretrained(world.model_dir)
    torch.manual_seed(0)
    fresh = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(world.model_dir))
    dialogs = generate_corpus(small_cfg.corpus, world_seed).dialogs[:16]
    batch = collate(encode_dialogs(tok, dialogs, small_cfg.model.max_seq_len), tok.pad_token_id)
    assert evaluate_loss(trained, batch) < evaluate_loss(fresh, batch) - 1.0


def test_same_config_and_seed_is_a_cache_hit(small_world, small_cfg, world_seed) -> None:
    world, _ = small_world
    start = time.perf_counter()
    again = build_tiny_world(small_cfg, world_seed, progress=lambda _: None)
    assert again.cached and time.perf_counter() - start < 1.0
    assert again.root == world.root and again.final_loss == world.final_loss


def test_cache_dir_does_not_change_the_key(small_cfg, make_small_cfg, tmp_path, world_seed) -> None:
    assert world_key(small_cfg, world_seed) == world_key(make_small_cfg(tmp_path), world_seed)
    assert world_key(small_cfg, world_seed) != world_key(small_cfg, world_seed + 1)


def test_other_seed_rebuilds_and_replaces_a_world_in_out_dir(small_world, small_cfg, tmp_path, world_seed) -> None:
    out = tmp_path / "world"
    first = build_tiny_world(small_cfg, world_seed, out_dir=out, progress=lambda _: None)
    assert not first.cached and first.root == out.absolute()  # out_dir is not the cache
    other = build_tiny_world(small_cfg, world_seed + 1, out_dir=out, progress=lambda _: None)
    assert not other.cached and other.seed == world_seed + 1 and other.key != first.key
    assert json.loads((out / "manifest.json").read_text())["seed"] == world_seed + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]  # no staging directories left behind


def test_half_built_world_is_not_taken_as_complete(small_world, small_cfg, tmp_path, world_seed) -> None:
    world, _ = small_world
    out = tmp_path / "world"
    build_tiny_world(small_cfg, world_seed, out_dir=out, progress=lambda _: None)
    (out / "manifest.json").unlink()  # as if the build had died before its last write
    rebuilt = build_tiny_world(small_cfg, world_seed, out_dir=out, progress=lambda _: None)
    assert not rebuilt.cached and (out / "manifest.json").is_file()


def test_out_dir_with_foreign_files_is_refused(small_cfg, tmp_path, world_seed) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt.*fix: pass a new or empty directory"):
        build_tiny_world(small_cfg, world_seed, out_dir=tmp_path, progress=lambda _: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_seed_must_be_an_int(small_cfg) -> None:
    with pytest.raises(TypeError, match="seed = '7'"):
        build_tiny_world(small_cfg, "7")  # type: ignore[arg-type]


def test_qwen2_arch_builds_and_loads(small_cfg, tmp_path, world_seed) -> None:
    model_cfg = dataclasses.replace(small_cfg.model, arch="qwen2")
    world = build_tiny_world(dataclasses.replace(small_cfg, model=model_cfg), world_seed,
                             out_dir=tmp_path / "qwen", progress=lambda _: None)
    model = AutoModelForCausalLM.from_pretrained(world.model_dir)
    assert model.config.model_type == "qwen2" and world.final_loss < world.initial_loss
