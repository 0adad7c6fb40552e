"""One way to turn what a user names as a model into a Hugging Face directory.

A model spec is one of:

- ``tiny-world``: the tiny world's policy, built from the world config (or found in its cache);
- an ``ouro run`` directory (it holds ``run.json``): the run's current policy, ``RUN_DIR/policy`` (before its
  first update, the model its config starts from);
- a learner checkpoint (``learner_state.json`` beside ``policy/``): the checkpoint's policy;
- any Hugging Face model directory (it holds ``config.json``);
- a LoRA run's policy (a run directory, checkpoint or adapter directory holding ``adapter_config.json``): the
  adapter merged into its base once (:mod:`ouro_ray.models.adapter`);
- a GGUF file, or ``package:NAME`` for the GGUF file an installed package holds: converted once to a
  Hugging Face directory in a content-hashed cache (:mod:`ouro_ray.models.gguf`).

Every command and config key that takes a model (``model.path``, ``--model``, ``--policy``,
``judges.llm.model``, ``reward_model.path``…) goes through :func:`resolve_model`, so each accepts
all of them. Imports no torch: resolving is file checks (and, for the tiny world and a GGUF file, a cached build).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ouro_ray.config.schema import TINY_WORLD
from ouro_ray.config.world import WorldConfig

RUN_MARKER = "run.json"
"""The file that marks an ``ouro run`` directory."""
RUN_POLICY_DIR = "policy"
"""A run's current policy (and a learner checkpoint's policy): a Hugging Face directory."""
CHECKPOINT_MARKER = "learner_state.json"
"""The file that marks a learner checkpoint (``RUN_DIR/train/learner/checkpoint_NNNNNN``)."""


class ModelNotFoundError(ValueError):
    """A model spec that names no model; the message says which and how to fix it."""


@dataclass(frozen=True)
class ResolvedModel:
    """The Hugging Face directory a spec names, and the run it belongs to (None when it is no run's)."""

    model_dir: Path
    run_dir: Path | None = None


def resolve_model(spec: str | Path, world: WorldConfig | None = None, seed: int = 0,
                  progress: Callable[[str], None] = lambda _: None, key: str = "model") -> ResolvedModel:
    """The model ``spec`` names (see the module docstring); ``world`` and ``seed`` build the tiny world.

    ``key`` is what the error messages call the spec (``model.path``, ``--model``)."""
    if str(spec) == TINY_WORLD:
        from ouro_ray.world import build_tiny_world

        return ResolvedModel(Path(build_tiny_world(world or WorldConfig(), seed, progress=progress).model_dir))
    from ouro_ray.models.gguf import gguf_model_dir, is_gguf_spec

    if is_gguf_spec(spec):
        return ResolvedModel(gguf_model_dir(spec, progress, key))
    from ouro_ray.models.adapter import is_adapter_dir, merged_model_dir

    path = Path(spec).expanduser()
    if (path / RUN_MARKER).is_file():
        policy = path / RUN_POLICY_DIR
        if is_adapter_dir(policy):  # a LoRA run: its adapter merged into the base, once
            return ResolvedModel(merged_model_dir(policy, progress, key), path)
        if not (policy / "config.json").is_file() and _not_updated(path):
            return _initial_model(path, progress, key)  # no update yet: the current policy is the one it started from
        if not (policy / "config.json").is_file():
            raise ModelNotFoundError(
                f"{key} = {str(spec)!r}: a run directory without a policy at {policy} (the run has not finished "
                "a round yet); fix: wait for the first round to finish, or name a Hugging Face model directory")
        return ResolvedModel(policy, path)
    if (path / CHECKPOINT_MARKER).is_file() and ((path / RUN_POLICY_DIR / "config.json").is_file()
                                                 or is_adapter_dir(path / RUN_POLICY_DIR)):
        run = next((p for p in path.parents if (p / RUN_MARKER).is_file()), None)
        policy = path / RUN_POLICY_DIR
        return ResolvedModel(merged_model_dir(policy, progress, key) if is_adapter_dir(policy) else policy, run)
    if is_adapter_dir(path):
        return ResolvedModel(merged_model_dir(path, progress, key))
    if (path / "config.json").is_file():
        return ResolvedModel(path)
    raise ModelNotFoundError(
        f"{key} = {str(spec)!r}: no model there (no config.json, no {RUN_MARKER}, no {CHECKPOINT_MARKER}); fix: name "
        f"a Hugging Face model directory (one saved with save_pretrained), an `ouro run` directory, a learner "
        f"checkpoint, a .gguf file, package:NAME (an installed package holding one) or '{TINY_WORLD}'")


def _not_updated(run: Path) -> bool:
    """Whether a run (with its config.yaml) has not updated its policy yet: no state.json yet, or policy_version 0."""
    import json

    state = run / "state.json"
    if not (run / "config.yaml").is_file():
        return False
    return not state.is_file() or json.loads(state.read_text(encoding="utf-8")).get("policy_version", 0) == 0


def _initial_model(run: Path, progress: Callable[[str], None], key: str) -> ResolvedModel:
    """The model a run started from (its config's ``model.path``), as the run's current policy."""
    from ouro_ray.config import load_config

    cfg = load_config(run / "config.yaml")
    return ResolvedModel(resolve_model(cfg.model.path, cfg.world, cfg.seed, progress, key).model_dir, run)
