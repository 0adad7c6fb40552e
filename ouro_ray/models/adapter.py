"""A LoRA run's policy as a whole model: the adapter merged into its base, once, kept beside the adapter.

A run that trains LoRA (``learner.lora.enabled``) checkpoints and exports only the adapter
(``RUN_DIR/policy/adapter_model.safetensors`` and ``adapter_config.json``, whose
``base_model_name_or_path`` names the model it was trained on). Every command that takes a model
(``ouro eval --policy RUN_DIR``, ``ouro chat``, ``ouro serve``, a new run's ``model.path``) needs a whole
Hugging Face directory: :func:`merged_model_dir` merges the adapter into its base (peft's
``merge_and_unload``) and saves the result with the base's tokenizer under
``<policy>/../.merged/<sha256 of the adapter, 16 hex>``, so a second call finds it at once and a newer
adapter gets a directory of its own. Imports no torch until a merge runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from ouro_ray.data.files import file_sha256
from ouro_ray.models.resolve import ModelNotFoundError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_dir(path: Path) -> bool:
    """Whether ``path`` holds a peft adapter (its config and weights) rather than a whole model."""
    return (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()


def merged_model_dir(adapter: Path, progress: Callable[[str], None] = lambda _: None, key: str = "model") -> Path:
    """The whole model of the adapter at ``adapter`` (see the module docstring), merged on first use."""
    base = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base or not (Path(base) / "config.json").is_file():
        raise ModelNotFoundError(
            f"{key}: the LoRA adapter at {adapter} was trained on {base!r}, which is not a model directory here; fix: "
            f"make that base model available at that path (the run's model.path), or name the base model itself")
    target = adapter.parent / ".merged" / file_sha256(adapter / ADAPTER_WEIGHTS)[:16]
    if (target / "config.json").is_file():
        return target
    progress(f"merging the LoRA adapter at {adapter} into its base {base} (once) → {target}")
    from peft import PeftModel

    from ouro_ray.models.load import load_causal_lm

    model, tokenizer = load_causal_lm(base)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    for old in target.parent.iterdir():  # adapters of earlier rounds: their merges are stale
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target
