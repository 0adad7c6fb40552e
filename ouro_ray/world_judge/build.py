"""Build the world's judge on first need, beside the world's policy, and cache it there.

The judge is a second model of the tiny world (:mod:`ouro_ray.world_judge.train`), kept apart
from the policy's build so the world itself stays below the judges: a world is built when a policy is
resolved, its judge only when a command asks for it (``judges.llm.model: auto``, ``ouro tiny-world``,
``ouro judge-eval``). The judge lives at ``<world>/judge/`` with ``build.json`` written last; it is
trained in a hidden sibling directory and renamed into place, so a crashed or concurrent build never
leaves a judge that looks finished. Its key hashes the world's key, the ``world.judge`` section and
:data:`JUDGE_CODE_VERSION`: changing the judge's config retrains the judge, never the policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

from ouro_ray.config.fields import to_dict
from ouro_ray.config.world import WorldConfig
from ouro_ray.data.files import write_json_atomic
from ouro_ray.world.build import JUDGE_DIR, build_tiny_world, save_quietly
from ouro_ray.world.corpus import generate_corpus
from ouro_ray.world.manifest import WorldManifest

JUDGE_CODE_VERSION = "world-judge/1"
"""Bump whenever the judge's examples or training change what a build produces."""

BUILD_NAME = "build.json"


def build_world_judge(cfg: WorldConfig, seed: int, progress: Callable[[str], None] = print,
                      world: WorldManifest | None = None) -> Path:
    """The judge directory of the world that ``cfg`` and ``seed`` build (``world`` when already at hand):
    from the cache if built before for this world, judge config and code, else trained now."""
    if not cfg.judge.enabled:
        raise ValueError("world.judge.enabled = false: this world has no judge to build; fix: set "
                         "world.judge.enabled=true, or name a judge model directory in judges.llm.model")
    world = world or build_tiny_world(cfg, seed, progress=progress)
    key = judge_key(world.key, cfg)
    judge_dir = world.root / JUDGE_DIR
    if _complete(judge_dir, key):
        progress(f"world judge {key}: cache hit at {judge_dir}")
        return judge_dir
    staging = Path(tempfile.mkdtemp(dir=world.root.parent, prefix=f".{world.root.name}.judge-partial-"))
    try:
        progress(f"world judge {key}: building into {judge_dir}")
        from ouro_ray.world_judge.train import train_judge  # torch and transformers: only when building

        info = train_judge(staging, cfg.judge, generate_corpus(cfg.corpus, seed), seed, progress, save=save_quietly)
        write_json_atomic(staging / BUILD_NAME, {"key": key, "world_key": world.key, "code_version": JUDGE_CODE_VERSION,
                                                 "config": to_dict(cfg.judge), **info})
        _publish(staging, judge_dir, key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once published
    return judge_dir


def judge_key(world_key: str, cfg: WorldConfig) -> str:
    """Content hash of a judge build: the world's key, the judge's config values and the judge's code version."""
    blob = json.dumps({"world": world_key, "code": JUDGE_CODE_VERSION, "judge": to_dict(cfg.judge)}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _complete(judge_dir: Path, key: str) -> bool:
    try:
        built = json.loads((judge_dir / BUILD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or torn: not complete
        return False
    return built.get("key") == key and (judge_dir / "config.json").is_file()


def _publish(staging: Path, judge_dir: Path, key: str) -> None:
    """Rename the finished build into place; an older judge there is moved aside first."""
    if judge_dir.exists():
        if _complete(judge_dir, key):  # a concurrent build of the same key finished first; theirs is as good
            return
        old = judge_dir.with_name(f".{judge_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(judge_dir, old)
        os.rename(staging, judge_dir)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(staging, judge_dir)
    except OSError:
        if not _complete(judge_dir, key):
            raise
