"""Build the tiny world (corpus, tokenizer, pretrained tiny LM) once per config and seed, then cache it.

The cache key hashes the config values (all but ``cache_dir``, which says where, not what, and the
``judge`` section: the world's judge is built apart, on first need, by
:func:`ouro_ray.world_judge.build.build_world_judge`), the seed and :data:`CODE_VERSION`. A world is
built in a hidden sibling directory and renamed into
place only when its manifest is written, so a crashed or concurrent build never leaves a directory
that looks finished. Layout of a world::

    <root>/corpus/dialogs.jsonl      dialogs shard
    <root>/corpus/summaries.jsonl    summaries shard (the ground truth behind each dialog)
    <root>/model/                    Hugging Face checkpoint: model and tokenizer together
    <root>/manifest.json             written last
    <root>/judge/                    the world's judge, once built (its own tokenizer and LM, and build.json)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import tokenizers
import torch
import transformers

from ouro_ray.config.fields import to_dict
from ouro_ray.config.world import WorldConfig
from ouro_ray.data.shards import write_shard
from ouro_ray.world.corpus import Corpus, generate_corpus
from ouro_ray.world.manifest import MANIFEST_FORMAT, MANIFEST_NAME, WorldManifest, load_complete, manifest_record, write_manifest
from ouro_ray.world.pretrain import build_model, encode_dialogs, pretrain
from ouro_ray.world.tokenizer import train_tokenizer

CODE_VERSION = "tiny-world/3"
"""Bump whenever the corpus, tokenizer or training code changes what a build produces."""

JUDGE_DIR = "judge"
"""Where the world's judge lives inside a world (built on demand by :mod:`ouro_ray.world_judge.build`)."""

WORLD_ENTRIES = frozenset({"corpus", "model", JUDGE_DIR, MANIFEST_NAME})
"""The only entries a world directory holds; anything else there means it is not ours to replace."""

_PATHS = {"model_dir": "model", "dialogs": "corpus/dialogs.jsonl", "summaries": "corpus/summaries.jsonl"}


def build_tiny_world(
    cfg: WorldConfig,
    seed: int,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] = print,
) -> WorldManifest:
    """The tiny world for ``cfg`` and ``seed``: from the cache if built before, else built now.

    With ``out_dir`` None the world lives at ``<cache dir>/<key>``; otherwise at ``out_dir``, which
    must be new, empty, or an earlier world (it is then replaced unless its key matches).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed = {seed!r}: must be a whole number; fix: set seed to an int such as 0")
    key = world_key(cfg, seed)
    root = Path(out_dir).expanduser() if out_dir is not None else cache_dir(cfg) / key
    root = root.absolute()
    found = load_complete(root, key)
    if found is not None:
        progress(f"tiny world {key}: cache hit at {root}")
        return found
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.partial-"))
    try:
        progress(f"tiny world {key}: building (seed {seed}) into {root}")
        data = _build_into(staging, cfg, seed, key, progress)
        return _publish(staging, root, key, data)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once published


def world_key(cfg: WorldConfig, seed: int) -> str:
    """Content hash of what a build produces: config values (not cache_dir, not the judge's section), seed,
    code version."""
    values = to_dict(cfg)
    values.pop("cache_dir", None)
    values.pop("judge", None)  # the judge is built apart (its own key, judges.world_judge.build)
    blob = json.dumps({"code": CODE_VERSION, "seed": seed, "config": values}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def cache_dir(cfg: WorldConfig) -> Path:
    """Where cached worlds live: ``cfg.cache_dir``, else ``$OURO_CACHE``, else ~/.cache/ouro-ray/worlds."""
    chosen = cfg.cache_dir or os.environ.get("OURO_CACHE") or "~/.cache/ouro-ray/worlds"
    return Path(chosen).expanduser()


def _check_replaceable(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"tiny world out_dir {root} is a file; fix: pass a directory path")
    foreign = sorted(set(os.listdir(root)) - WORLD_ENTRIES) if root.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"tiny world out_dir {root} holds files that are not part of a tiny world ({shown}); "
            f"fix: pass a new or empty directory, or remove those files"
        )


def _build_into(staging: Path, cfg: WorldConfig, seed: int, key: str, progress: Callable[[str], None]) -> dict:
    start = time.perf_counter()
    corpus = generate_corpus(cfg.corpus, seed)
    write_shard(corpus.dialogs, staging / _PATHS["dialogs"], "dialogs")
    write_shard(corpus.summaries, staging / _PATHS["summaries"], "summaries")
    progress(f"corpus: {len(corpus.dialogs)} dialogs, {sum(len(d['turns']) for d in corpus.dialogs)} turns")
    trained = _train_model(staging / _PATHS["model_dir"], cfg, corpus, seed, progress)
    data = {
        "format": MANIFEST_FORMAT,
        "key": key,
        "code_version": CODE_VERSION,
        "seed": seed,
        "config": to_dict(cfg),
        "counts": {"dialogs": len(corpus.dialogs), "summaries": len(corpus.summaries), **trained.pop("counts")},
        **trained,
        "build_seconds": round(time.perf_counter() - start, 2),
        "paths": dict(_PATHS),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_manifest(staging, data)
    return data


def _train_model(model_dir: Path, cfg: WorldConfig, corpus: Corpus, seed: int, progress) -> dict[str, Any]:
    """Train tokenizer and model, save both into ``model_dir``; return the manifest's model part."""
    texts = (turn["text"] for d in corpus.dialogs for turn in d["turns"])
    tokenizer = train_tokenizer(texts, cfg.model.vocab_size, cfg.model.max_seq_len)
    model = build_model(cfg.model, tokenizer, seed)
    n_params = sum(p.numel() for p in model.parameters())
    progress(f"tokenizer: {len(tokenizer)} tokens; model: {cfg.model.arch}, {n_params / 1e6:.2f}M parameters")
    examples = encode_dialogs(tokenizer, corpus.dialogs, cfg.model.max_seq_len)
    n_cut = sum(len(x) == cfg.model.max_seq_len for x in examples)
    if n_cut:
        progress(f"corpus: {n_cut} dialogs cut to max_seq_len = {cfg.model.max_seq_len} tokens")
    result = pretrain(model, examples, cfg.pretrain, tokenizer.pad_token_id, seed, progress)
    save_quietly(model, tokenizer, model_dir)
    return {
        "counts": {"tokens": sum(len(x) for x in examples), "truncated": n_cut, "vocab": len(tokenizer)},
        "n_params": n_params,
        "initial_loss": round(result.initial_loss, 4),
        "final_loss": round(result.final_loss, 4),
        "train_losses": [[step, round(loss, 4)] for step, loss in result.train_losses],
    }


def save_quietly(model, tokenizer, model_dir: Path) -> None:
    """Model and tokenizer into one directory, like any HF checkpoint; no progress bar in our log."""
    hf_logging = transformers.utils.logging
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _publish(staging: Path, root: Path, key: str, data: dict) -> WorldManifest:
    """Move the finished build into ``root`` with renames, so ``root`` is never half-written."""
    if root.is_dir() and os.listdir(root):
        found = load_complete(root, key)
        if found is not None:  # a concurrent build of the same key finished first; theirs is as good
            return found
        old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(root, old)
        os.rename(staging, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(staging, root)  # also replaces an empty directory
        except OSError:
            found = load_complete(root, key)
            if found is None:
                raise
            return found
    return manifest_record(root, data, cached=False)
