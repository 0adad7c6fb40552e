"""Which generation engine a rollout worker uses: vLLM when it can run, else transformers."""

from __future__ import annotations

from pathlib import Path

from ouro_ray.config.roles import RolloutConfig
from ouro_ray.rollout.protocol import GenerationBackend


def vllm_status() -> tuple[bool, str]:
    """(usable, reason): vLLM needs the package and a CUDA device."""
    from ouro_ray.rollout.vllm_backend import vllm_available

    return vllm_available()


def choose_backend(requested: str) -> str:
    """'vllm' or 'transformers' for the config's ``rollout.backend`` (auto picks vllm only when usable)."""
    if requested == "transformers":
        return "transformers"
    usable, reason = vllm_status()
    if requested == "vllm" and not usable:
        raise RuntimeError(f"rollout.backend = 'vllm' but vLLM cannot run here: {reason}; "
                           "fix: install the gpu extra on a CUDA machine, or set rollout.backend=auto")
    return "vllm" if usable else "transformers"


def make_backend(model_dir: Path, cfg: RolloutConfig, seed: int) -> tuple[GenerationBackend, object]:
    """``(backend, tokenizer)`` for ``model_dir``, on the engine :func:`choose_backend` picks."""
    from ouro_ray.models.load import load_causal_lm, load_tokenizer

    if choose_backend(cfg.backend) == "vllm":
        from ouro_ray.rollout.vllm_backend import VLLMBackend

        v = cfg.vllm
        tokenizer = load_tokenizer(model_dir)
        backend = VLLMBackend(str(model_dir), tokenizer=tokenizer, dtype=cfg.dtype,
                              gpu_memory_utilization=v.gpu_memory_utilization,
                              tensor_parallel_size=v.tensor_parallel_size, max_model_len=v.max_model_len,
                              enforce_eager=v.enforce_eager, seed=seed, enable_lora=v.enable_lora,
                              max_lora_rank=v.max_lora_rank)
        return backend, tokenizer
    from ouro_ray.models.device import pick_device
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    model, tokenizer = load_causal_lm(model_dir, dtype=cfg.dtype, device=pick_device())
    return TransformersBackend(model, tokenizer), tokenizer
