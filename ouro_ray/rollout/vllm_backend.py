"""Generation on vLLM (GPU only), and the two ways new policy weights reach its workers.

Written against vLLM 0.31-0.33 (V1 engine; the ``gpu`` extra pins ``vllm>=0.31``). It relies on:
``LLM(worker_extension_cls=..., logprobs_mode=...)``, ``LLM.generate`` with token-id prompts,
``LLM.beam_search`` + ``BeamSearchParams``, ``LLM.collective_rpc``, ``LLM.reset_prefix_cache``, and for
the NCCL path ``vllm.distributed.utils.StatelessProcessGroup`` + ``PyNcclCommunicator`` (the pattern of
vLLM's ``examples/offline_inference/rlhf_utils.py``). Every vLLM import happens inside a function, so
this module imports on machines without vLLM; :func:`vllm_available` says whether it can run.

Logprobs: the engine runs with ``logprobs_mode="raw_logprobs"`` and each request asks for
``logprobs=0`` (the sampled token's own logprob only), so the numbers are log-softmax of the raw
logits, before temperature / top-p / top-k: what PPO's ``old_logprobs`` need (protocol.py).

Weight updates, two paths:
  * object store / CPU: :meth:`VLLMBackend.load_weights` sends the tensors to every worker through
    ``collective_rpc`` and each worker calls the model's own ``load_weights`` (which also shards them
    for tensor parallelism). Simple; right for small models.
  * NCCL: the learner is rank 0 of a group with the vLLM workers (ranks 1..tp). Both sides join at
    the same time (:meth:`VLLMBackend.init_weight_update_group` with :func:`learner_weight_group`),
    then for each update the rollout side calls :meth:`VLLMBackend.update_weights_broadcast` with
    :func:`weight_manifest` while the learner, concurrently, calls :func:`broadcast_state` (e.g. two
    Ray actor calls awaited together). Tensors go GPU to GPU, in manifest order.
After either path the prefix cache is reset: KV blocks cached under the old weights must not be
reused for the same prompts under the new ones.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ouro_ray.config.roles import SamplingConfig
from ouro_ray.rollout.protocol import GeneratedCandidate
from ouro_ray.seeding import derive_seed

EXTENSION_CLS = "ouro_ray.rollout.vllm_backend.WeightSyncExtension"
"""Qualified name vLLM imports in each worker process to add our weight-sync methods."""

TARGET_VERSIONS = "vllm 0.31-0.33 (V1 engine)"
_REQUIRED_ENGINE_ARGS = ("worker_extension_cls", "logprobs_mode")
_FIX = "fix: install the gpu extra (pip install 'ouro-ray[gpu]') on a CUDA machine, or set rollout.backend=transformers"


def vllm_available() -> tuple[bool, str]:
    """``(usable, reason)``: usable only when ``import vllm`` succeeds and torch sees a CUDA device.

    The reason names what is missing (vllm, CUDA, or both), or what was found when usable.
    """
    missing, version = [], None
    try:
        import vllm
        version = getattr(vllm, "__version__", "?")
    except Exception as exc:  # a CUDA wheel on the wrong torch fails with OSError/RuntimeError, not only ImportError
        missing.append(f"vllm cannot be imported ({type(exc).__name__}: {exc})")
    if not torch.cuda.is_available():
        missing.append(f"CUDA is not available (torch {torch.__version__} sees no GPU)")
    if missing:
        return False, "; ".join(missing)
    return True, f"vllm {version} with CUDA device {torch.cuda.get_device_name(0)}"


def _require_vllm():
    """The vllm module, or a clear error: ImportError without vllm, RuntimeError without CUDA or with an
    engine too old for the arguments this backend passes."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"VLLMBackend needs the vllm package, which cannot be imported ({exc}); {_FIX}") from exc
    if not torch.cuda.is_available():
        raise RuntimeError(f"VLLMBackend needs a CUDA GPU, but torch {torch.__version__} sees none; {_FIX}")
    try:
        known = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    except TypeError as exc:
        raise RuntimeError(f"vllm {vllm.__version__}: EngineArgs is not a dataclass; this backend follows "
                           f"{TARGET_VERSIONS}") from exc
    missing = [name for name in _REQUIRED_ENGINE_ARGS if name not in known]
    if missing:
        raise RuntimeError(f"vllm {vllm.__version__} has no engine argument(s) {missing}; this backend follows "
                           f"{TARGET_VERSIONS}; fix: upgrade vllm")
    return vllm


class VLLMBackend:
    """A ``GenerationBackend`` on a ``vllm.LLM`` engine, with in-place weight updates."""

    name = "vllm"

    def __init__(self, model_path: str, *, tokenizer: Any = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.5, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, enforce_eager: bool = False, seed: int = 0,
                 enable_lora: bool = False, max_lora_rank: int = 16):
        """``tokenizer``: a path for vLLM to load, or a loaded tokenizer object used to decode candidate
        text (vLLM then loads the tokenizer from ``model_path``); None: the one in ``model_path``."""
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization = {gpu_memory_utilization}: must be in (0, 1]")
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size = {tensor_parallel_size}: must be >= 1")
        vllm = _require_vllm()
        tokenizer_path = os.fspath(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else None
        self.llm = vllm.LLM(
            model=str(model_path), tokenizer=tokenizer_path, dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len, enforce_eager=enforce_eager, seed=seed,
            worker_extension_cls=EXTENSION_CLS, logprobs_mode="raw_logprobs",
            **({"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": 1} if enable_lora else {}),
        )
        self.enable_lora = enable_lora
        self._lora_request = None  # the adapter of the latest LoRA payload, applied to every request
        self._lora_root = Path(tempfile.mkdtemp(prefix="ouro-vllm-lora-"))
        self.tokenizer = tokenizer if tokenizer is not None and tokenizer_path is None else self.llm.get_tokenizer()

    # -- generation ------------------------------------------------------------------------------

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingConfig,
                 seed: int) -> list[GeneratedCandidate]:
        """``sampling.n`` candidates per prompt, prompt-major; beam search when ``num_beams > 1``."""
        prompts = [[int(t) for t in p] for p in prompt_token_ids]
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError(f"prompt {i} has no tokens; every prompt needs at least one (e.g. bos)")
        if not prompts:
            return []
        if sampling.num_beams > 1:
            return self._beam_search(prompts, sampling)
        return self._sample(prompts, sampling, seed)

    def _sample(self, prompts: list[list[int]], sampling: SamplingConfig, seed: int) -> list[GeneratedCandidate]:
        # One n=1 request per candidate, each with its own derived seed: the streams are ours, not
        # vLLM's internal fan-out of n, and a candidate does not change when n does.
        from vllm import SamplingParams

        requests, params, owners = [], [], []
        for i, prompt in enumerate(prompts):
            for k in range(sampling.n):
                requests.append({"prompt_token_ids": prompt})
                params.append(SamplingParams(**sampling_kwargs(sampling, derive_seed(seed, "vllm", i, k))))
                owners.append(i)
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False,
                                    lora_request=self._lora_request)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
        return [self._candidate(owner, out) for owner, out in zip(owners, outputs)]

    def _candidate(self, prompt_index: int, request_output) -> GeneratedCandidate:
        if len(request_output.outputs) != 1:
            raise RuntimeError(f"vLLM returned {len(request_output.outputs)} completions for an n=1 request")
        completion = request_output.outputs[0]
        token_ids = np.asarray(list(completion.token_ids), dtype=np.int32)
        logprobs = sampled_logprobs(token_ids, completion.logprobs)
        return GeneratedCandidate(prompt_index, token_ids, logprobs, self._decode(token_ids))

    def _beam_search(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[GeneratedCandidate]:
        # vLLM's beam search expands each beam with the engine's top logprobs; under raw_logprobs mode
        # those are raw log-softmax values, so each step's dict already holds the chosen token's
        # logprob. Temperature is fixed at 0: the search is deterministic (SamplingConfig.checks).
        from vllm.sampling_params import BeamSearchParams

        params = BeamSearchParams(beam_width=sampling.num_beams, max_tokens=sampling.max_new_tokens, temperature=0.0)
        outputs = self.llm.beam_search([{"prompt_token_ids": p} for p in prompts], params,
                                       lora_request=self._lora_request)
        candidates = []
        for i, (prompt, out) in enumerate(zip(prompts, outputs)):
            if len(out.sequences) < sampling.n:
                raise RuntimeError(f"vLLM beam search returned {len(out.sequences)} beams for prompt {i}, "
                                   f"fewer than n={sampling.n}")
            for seq in out.sequences[:sampling.n]:  # best first
                token_ids, logprobs = beam_tokens_and_logprobs(prompt, seq.tokens, seq.logprobs)
                candidates.append(GeneratedCandidate(i, token_ids, logprobs, self._decode(token_ids)))
        return candidates

    def _decode(self, token_ids: np.ndarray) -> str:
        # Stripped like the transformers backend, so judges see the same text from either engine.
        return self.tokenizer.decode(token_ids.tolist(), skip_special_tokens=True).strip()

    # -- weights ---------------------------------------------------------------------------------

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy full parameters (HF names) into every vLLM worker through the engine's RPC."""
        self.llm.collective_rpc("ouro_load_named_tensors", args=(pack_named_tensors(named_tensors),))
        self._forget_cached_prefixes()

    def load_payload(self, payload) -> None:
        """Load a :class:`ouro_ray.weights.WeightPayload`: full weights in place, or a LoRA adapter.

        A LoRA payload (only the adapter crossed the object store) is written as a peft adapter
        directory and served through vLLM's ``LoRARequest`` on every later request; its int id is
        the version + 1, so vLLM loads each version once.
        """
        from ouro_ray.weights import named_tensors, write_adapter_dir

        if payload.kind == "lora":
            if not self.enable_lora:
                raise RuntimeError(f"weights version {payload.version} are a LoRA adapter but the vLLM engine was "
                                   "built without LoRA; fix: set rollout.vllm.enable_lora=true (and max_lora_rank)")
            from vllm.lora.request import LoRARequest

            path = write_adapter_dir(payload, self._lora_root / f"v{payload.version}")
            self._lora_request = LoRARequest(f"ouro-v{payload.version}", payload.version + 1, str(path))
            return
        self.load_weights(named_tensors(payload))
        self._lora_request = None

    def init_weight_update_group(self, master_address: str, master_port: int, rank_offset: int,
                                 world_size: int) -> None:
        """Join the NCCL group whose rank 0 is the learner; blocks until the learner joins too
        (:func:`learner_weight_group`). Usually ``rank_offset=1``, ``world_size=1 + tensor_parallel_size``."""
        self.llm.collective_rpc("ouro_init_weight_update_group",
                                args=(master_address, master_port, rank_offset, world_size))

    def update_weights_broadcast(self, names_dtypes_shapes: Sequence[tuple[str, str, Sequence[int]]]) -> None:
        """Receive each tensor of the manifest from rank 0 and load it; the learner must be calling
        :func:`broadcast_state` with the same manifest at the same time."""
        manifest = [(str(n), str(d), [int(s) for s in shape]) for n, d, shape in names_dtypes_shapes]
        self.llm.collective_rpc("ouro_update_weights", args=(manifest,))
        self._forget_cached_prefixes()

    def _forget_cached_prefixes(self) -> None:
        if self.llm.reset_prefix_cache() is False:  # some versions return None on success
            raise RuntimeError("vLLM could not reset its prefix cache after a weight update (requests still "
                               "running?); cached KV from the old weights would be reused")


def sampling_kwargs(sampling: SamplingConfig, request_seed: int) -> dict[str, Any]:
    """``vllm.SamplingParams`` arguments for one n=1 request (temperature 0 is greedy in vLLM)."""
    return dict(
        n=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else -1,  # -1 (or 0) disables top-k in vLLM
        max_tokens=sampling.max_new_tokens,
        seed=request_seed,
        logprobs=0,  # only the sampled token's logprob
        skip_special_tokens=True,
    )


def sampled_logprobs(token_ids: np.ndarray, steps) -> np.ndarray:
    """(T,) float32: each sampled token's logprob, read from vLLM's per-step ``{token_id: Logprob}``."""
    if steps is None or len(steps) != len(token_ids):
        got = "none" if steps is None else len(steps)
        raise RuntimeError(f"vLLM returned {got} logprob steps for {len(token_ids)} tokens; the request must "
                           "ask for logprobs=0 and the engine must return one entry per token")
    out = np.empty(len(token_ids), dtype=np.float32)
    for t, (token, step) in enumerate(zip(token_ids.tolist(), steps)):
        if token not in step:
            raise RuntimeError(f"vLLM's logprobs at step {t} lack the sampled token {token}")
        out[t] = step[token].logprob
    return out


def beam_tokens_and_logprobs(prompt: Sequence[int], tokens: Sequence[int], steps) -> tuple[np.ndarray, np.ndarray]:
    """A beam's candidate tokens (int32) and their logprobs (float32); vLLM's beam ``tokens`` start
    with the prompt and ``logprobs`` hold one ``{token_id: Logprob}`` per generated token."""
    if list(tokens[:len(prompt)]) != list(prompt):
        raise RuntimeError("vLLM beam tokens do not start with the prompt; this backend follows "
                           f"{TARGET_VERSIONS}, where BeamSearchSequence.tokens include the prompt")
    token_ids = np.asarray(list(tokens[len(prompt):]), dtype=np.int32)
    return token_ids, sampled_logprobs(token_ids, steps)


def pack_named_tensors(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> bytes:
    """The tensors as one ``torch.save`` blob: the V1 engine's RPC carries bytes safely, tensors nested
    in lists not in every version."""
    pairs = [(str(name), t.detach().to("cpu").contiguous()) for name, t in named_tensors]
    buffer = io.BytesIO()
    torch.save(pairs, buffer)
    return buffer.getvalue()


def unpack_named_tensors(blob: bytes) -> list[tuple[str, torch.Tensor]]:
    """Inverse of :func:`pack_named_tensors` (``weights_only``: no code runs while loading)."""
    return torch.load(io.BytesIO(blob), weights_only=True)


class WeightSyncExtension:
    """Methods vLLM mixes into each of its GPU workers (``worker_extension_cls``); called through
    ``LLM.collective_rpc``. ``self.model_runner`` and ``self.device`` come from the vLLM worker.

    Every name starts with ``ouro_``: vLLM refuses an extension attribute the worker already has, and
    recent workers define ``update_weights`` / ``init_weight_transfer_engine`` themselves.
    """

    def ouro_load_named_tensors(self, blob: bytes) -> int:
        """Load packed (name, tensor) pairs into this worker's model; returns how many."""
        pairs = unpack_named_tensors(blob)
        _worker_model(self).load_weights(weights=pairs)
        return len(pairs)

    def ouro_init_weight_update_group(self, master_address: str, master_port: int, rank_offset: int,
                                      world_size: int) -> None:
        """Join the learner's NCCL group as rank ``rank_offset + this worker's rank``."""
        from vllm.distributed.parallel_state import get_world_group

        rank = get_world_group().rank + rank_offset
        self._weight_group = nccl_group(master_address, master_port, rank, world_size, self.device)

    def ouro_update_weights(self, manifest: list[tuple[str, str, list[int]]]) -> int:
        """Receive and load every tensor of the manifest, in order; returns how many."""
        for name, dtype_name, shape in manifest:
            self.ouro_update_weight(name, dtype_name, shape)
        torch.cuda.synchronize()
        return len(manifest)

    def ouro_update_weight(self, name: str, dtype_name: str, shape: Sequence[int]) -> None:
        """Receive one tensor broadcast from rank 0 (the learner) and load it."""
        group = getattr(self, "_weight_group", None)
        if group is None:
            raise RuntimeError("ouro_update_weight called before ouro_init_weight_update_group; "
                               "join the learner's group first")
        weight = torch.empty(tuple(shape), dtype=_torch_dtype(dtype_name), device=self.device)
        group.broadcast(weight, src=0, stream=torch.cuda.current_stream())
        _worker_model(self).load_weights(weights=[(name, weight)])
        del weight


def _worker_model(worker) -> torch.nn.Module:
    """The worker's model, unwrapped from a CUDA-graph wrapper where the runner offers ``get_model``."""
    runner = getattr(worker, "model_runner", None)
    if runner is None:
        raise RuntimeError(f"vLLM worker {type(worker).__name__} has no model_runner; "
                           f"this extension follows {TARGET_VERSIONS}")
    model = runner.get_model() if hasattr(runner, "get_model") else getattr(runner, "model", None)
    if model is None or not hasattr(model, "load_weights"):
        raise RuntimeError(f"vLLM model runner {type(runner).__name__} exposes no model with load_weights")
    return model


def _torch_dtype(dtype_name: str) -> torch.dtype:
    dtype = getattr(torch, str(dtype_name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype {dtype_name!r} is not a torch dtype name (e.g. 'bfloat16')")
    return dtype


def nccl_group(master_address: str, master_port: int, rank: int, world_size: int, device):
    """A ``PyNcclCommunicator`` over a ``StatelessProcessGroup``: outside torch.distributed's global
    group, so the learner's and vLLM's own groups are untouched. Blocks until all ranks join."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    pg = StatelessProcessGroup.create(host=master_address, port=master_port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(pg, device=device)


# -- learner side (needs vllm installed in the learner's environment too) ---------------------------

def learner_weight_group(master_address: str, master_port: int, world_size: int, device=None):
    """Join the weight-update group as rank 0 (it hosts the rendezvous at ``master_address:master_port``);
    run while the rollout side runs :meth:`VLLMBackend.init_weight_update_group`."""
    _require_vllm()
    device = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    return nccl_group(master_address, master_port, 0, world_size, device)


def weight_manifest(model: torch.nn.Module) -> list[tuple[str, str, tuple[int, ...]]]:
    """(HF name, dtype name, shape) of each parameter, in the order :func:`broadcast_state` sends them.

    Parameters only (tied weights once): buffers such as rotary tables are rebuilt by vLLM. A peft
    model must be merged first, so that the names are the base model's.
    """
    return [(name, str(p.dtype).removeprefix("torch."), tuple(p.shape)) for name, p in model.named_parameters()]


@torch.no_grad()
def broadcast_state(model: torch.nn.Module, comm) -> int:
    """Broadcast every parameter from rank 0, in :func:`weight_manifest` order; returns how many."""
    device = getattr(comm, "device", None)
    device = torch.device("cuda", torch.cuda.current_device()) if device is None else device
    stream = torch.cuda.current_stream()
    count = 0
    for _, param in model.named_parameters():
        comm.broadcast(param.detach().to(device).contiguous(), src=0, stream=stream)
        count += 1
    torch.cuda.synchronize()
    return count
