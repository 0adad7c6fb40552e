"""Versioned policy weights as the object store carries them: numpy arrays, zero-copy on read.

The learner packs its weights once (:func:`pack_weights`), ``ray.put``s the payload once, and every
rollout / reward worker ``ray.get``s it: numpy arrays come back as read-only views of the shared
memory segment, so N workers cost one copy in the store and one ``copy_`` into each model. bfloat16
has no numpy dtype; it travels as its int16 bit pattern and is viewed back.

With a peft model only the adapter moves (``kind='lora'``, with its ``LoraConfig`` as a dict); the
receiving worker attaches the same adapter to its base model on first use.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch


@dataclass(frozen=True)
class WeightPayload:
    """One published version of the policy's weights."""

    version: int
    kind: Literal["full", "lora"]
    arrays: dict[str, np.ndarray]
    dtypes: dict[str, str]
    """torch dtype name of each tensor (e.g. 'bfloat16', stored as int16 bits)."""
    lora_config: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _to_numpy(t: torch.Tensor) -> tuple[np.ndarray, str]:
    t = t.detach().to("cpu").contiguous()
    name = str(t.dtype).removeprefix("torch.")
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().copy(), name
    return t.numpy().copy(), name


def pack_weights(model: torch.nn.Module, version: int, **meta: Any) -> WeightPayload:
    """The model's weights as a payload: the whole state dict, or only the LoRA adapter of a peft model."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version = {version!r}: must be an int >= 0 that grows with every update")
    if _is_peft(model):
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
        config = model.peft_config["default"].to_dict()
        config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
        kind, lora_config = "lora", config
    else:
        state, kind, lora_config = model.state_dict(), "full", None
    arrays, dtypes = {}, {}
    for name, tensor in state.items():
        arrays[name], dtypes[name] = _to_numpy(tensor)
    return WeightPayload(version, kind, arrays, dtypes, lora_config, dict(meta))


def named_tensors(payload: WeightPayload) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) views of the payload's arrays, without copying them."""
    with warnings.catch_warnings():
        # The arrays are read-only views of the object store; the tensors are only read (copied into a model).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for name, array in payload.arrays.items():
            tensor = torch.from_numpy(array)
            if payload.dtypes[name] == "bfloat16":
                tensor = tensor.view(torch.bfloat16)
            yield name, tensor


def _attach_lora(model: torch.nn.Module, lora_config: dict[str, Any]) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    known = {k: v for k, v in lora_config.items() if k in LoraConfig.__dataclass_fields__}
    return get_peft_model(model, LoraConfig(**known))


def apply_weights(model: torch.nn.Module, payload: WeightPayload) -> torch.nn.Module:
    """Load ``payload`` into ``model`` in place; returns the model (a new peft wrapper on first LoRA load)."""
    state = dict(named_tensors(payload))
    if payload.kind == "lora":
        from peft import set_peft_model_state_dict

        if not _is_peft(model):
            model = _attach_lora(model, payload.lora_config or {})
        result = set_peft_model_state_dict(model, state)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise KeyError(f"adapter tensors this model cannot take: {unexpected[:5]}; publish an adapter for the same base")
        return model
    target = model.get_base_model() if _is_peft(model) else model
    missing, unexpected = target.load_state_dict(state, strict=False)
    if unexpected:
        raise KeyError(f"published weights name parameters this model lacks: {sorted(unexpected)[:5]}; "
                       "fix: publish weights of the same architecture as the worker's model")
    return model


ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def write_adapter_dir(payload: WeightPayload, directory: str | Path) -> Path:
    """A LoRA payload as a peft adapter directory (what vLLM's ``LoRARequest`` and ``PeftModel`` load)."""
    import json

    from safetensors.numpy import save_file

    if payload.kind != "lora":
        raise ValueError(f"weights version {payload.version} are {payload.kind!r}, not a LoRA adapter")
    if any(dtype == "bfloat16" for dtype in payload.dtypes.values()):
        state = {k: v.astype(np.float32) if payload.dtypes[k] != "bfloat16" else
                 torch.from_numpy(v.copy()).view(torch.bfloat16).float().numpy() for k, v in payload.arrays.items()}
    else:
        state = {k: np.ascontiguousarray(v) for k, v in payload.arrays.items()}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / ADAPTER_WEIGHTS))
    (out / ADAPTER_CONFIG).write_text(json.dumps(payload.lora_config or {}, indent=1, default=str))
    return out
