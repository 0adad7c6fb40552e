"""How one optimizer step is taken: in one process, with DDP, or with DeepSpeed ZeRO.

A strategy owns the wrapped module and the optimizer. The update code calls ``forward`` through
``strategy.module``, then ``backward(loss)`` per micro-batch and ``step()`` once per accumulated
batch; ``no_sync()`` skips DDP's all-reduce on the micro-batches before the last.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, ContextManager, Iterator, Protocol

import torch
from torch import nn

from ouro_ray.config.learner import DeepSpeedConfig, OptimConfig

OPTIMIZER_FILE = "optimizer.pt"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "ouro"


class Strategy(Protocol):
    module: nn.Module
    rank: int
    world_size: int

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self) -> float: ...

    def no_sync(self) -> ContextManager: ...

    def unwrapped(self) -> nn.Module: ...

    def gathered(self) -> ContextManager: ...

    def save_state(self, out: Path) -> None: ...

    def load_state(self, root: Path) -> None: ...


def reduce_metrics(metrics: dict[str, float], world_size: int) -> dict[str, float]:
    """Each metric averaged over the data-parallel ranks (every rank saw a different shard)."""
    if world_size <= 1 or not metrics:
        return metrics
    import torch.distributed as dist

    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    return {k: float(v) / world_size for k, v in zip(keys, values.cpu().tolist())}


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("the learner has no trainable parameters; check learner.lora.target_modules")
    return torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


class LocalStrategy:
    """One process, plain autograd (also each DDP rank's base)."""

    def __init__(self, module: nn.Module, cfg: OptimConfig, rank: int = 0, world_size: int = 1):
        self.module, self.cfg, self.rank, self.world_size = module, cfg, rank, world_size
        self.optimizer = make_optimizer(module.parameters(), cfg)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.cfg.grad_accum).backward()

    def step(self) -> float:
        params = [p for p in self.module.parameters() if p.grad is not None]
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.tensor(0.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def no_sync(self) -> ContextManager:
        return contextlib.nullcontext()

    def unwrapped(self) -> nn.Module:
        return self.module

    def gathered(self) -> ContextManager:
        return contextlib.nullcontext()

    def save_state(self, out: Path) -> None:
        """The optimizer state (every rank holds all of it under DDP: rank 0 writes)."""
        if self.rank == 0:
            torch.save(self.optimizer.state_dict(), out / OPTIMIZER_FILE)

    def load_state(self, root: Path) -> None:
        if (root / OPTIMIZER_FILE).is_file():
            self.optimizer.load_state_dict(torch.load(root / OPTIMIZER_FILE, weights_only=True))  # no code runs on load


class DDPStrategy(LocalStrategy):
    """Data parallel over an initialised process group (gloo on CPU, nccl on GPU), set up by Ray Train."""

    def __init__(self, module: nn.Module, cfg: OptimConfig, rank: int, world_size: int):
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        wrapped = DistributedDataParallel(module, device_ids=device_ids)
        super().__init__(wrapped, cfg, rank, world_size)

    def no_sync(self) -> ContextManager:
        return self.module.no_sync()

    def unwrapped(self) -> nn.Module:
        return self.module.module


TESTED_DEEPSPEED = "0.19.8"
CPU_OPS = ("ShareMemCommBuilder", "CPUAdamBuilder")
"""DeepSpeed's ops a CPU learner JIT-builds: the shared-memory collective (every engine start, ≈37 s to build)
and CPU Adam (optimizer offload, ≈50 s). ``make install`` builds both ahead (:func:`build_cpu_ops`)."""


def extensions_dir() -> Path:
    """Where torch caches DeepSpeed's JIT-built ops: one folder per Python environment, since a build records
    the environment's include paths, and two environments sharing a folder rebuild each other's ops."""
    prefix = str(Path(sys.prefix).resolve())
    return Path("~/.cache/ouro-ray/torch_extensions").expanduser() / hashlib.sha256(prefix.encode()).hexdigest()[:12]


def build_cpu_ops() -> list[Path]:
    """Build (or find already built) DeepSpeed's CPU ops in :func:`extensions_dir`; the built libraries' paths.

    Run by ``make install`` so that the first DeepSpeed engine on a machine starts without compiling."""
    deepspeed = _import_deepspeed()
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        raise RuntimeError(f"build_cpu_ops builds DeepSpeed's CPU ops; this machine's accelerator is "
                           f"{get_accelerator().device_name()!r} (deepspeed {deepspeed.__version__}); fix: install the "
                           "gpu extra there, whose ops DeepSpeed builds for that accelerator")
    built = []
    for name in CPU_OPS:
        builder = get_accelerator().create_op_builder(name)
        builder.load(verbose=False)
        built.append(Path(os.environ["TORCH_EXTENSIONS_DIR"]) / builder.name / f"{builder.name}.so")
    return built


def deepspeed_config(ds: DeepSpeedConfig, optim: OptimConfig, world_size: int) -> dict[str, Any]:
    """DeepSpeed's JSON config from ours (batch sizes per worker, ZeRO stage, offload, bf16).

    ``managed_gradient_accumulation: false`` hands the accumulation boundary to us: ``backward``
    only accumulates and every ``engine.step()`` reduces and updates, so DeepSpeed steps exactly
    where ``updates._accumulate`` calls ``step()`` (a short last group included). The loss is
    still divided by ``gradient_accumulation_steps``, as ``LocalStrategy`` does.
    """
    zero: dict[str, Any] = {"stage": ds.stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if ds.offload_param:
        zero["offload_param"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": optim.micro_batch_size,
        "gradient_accumulation_steps": optim.grad_accum,
        "train_batch_size": optim.micro_batch_size * optim.grad_accum * world_size,
        "managed_gradient_accumulation": False,
        "gradient_clipping": optim.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10 ** 9,
    }


def _import_deepspeed():
    """deepspeed, with the JIT cache pinned and the unmanaged accumulation this strategy relies on."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir()))
    import deepspeed
    from deepspeed.runtime import constants

    if not hasattr(constants, "MANAGED_GRADIENT_ACCUMULATION"):
        raise RuntimeError(f"learner.strategy = deepspeed needs DeepSpeed's managed_gradient_accumulation "
                           f"(unmanaged accumulation for ZeRO 1-3); deepspeed {deepspeed.__version__} lacks it; "
                           f"fix: pip install 'deepspeed>={TESTED_DEEPSPEED}'")
    return deepspeed


def _init_process_group(deepspeed, rank: int, world_size: int) -> None:
    """Use the group Ray Train set up; a lone in-process learner gets a one-process gloo group."""
    import torch.distributed as dist

    if dist.is_initialized():
        return  # DeepSpeed wraps the existing group (gloo on CPU: there is no oneCCL here)
    if world_size != 1:
        raise RuntimeError(f"learner.strategy = deepspeed on rank {rank} of {world_size} found no process group; "
                           "fix: run it under Ray Train (learner.num_workers >= 1), which sets one up")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("LOCAL_RANK", "0")  # DeepSpeed's engine reads it; a launcher would have set it
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, init_method=f"tcp://127.0.0.1:{port}",
                               rank=0, world_size=1, verbose=False)


def _offload_adam(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """DeepSpeed's CPU Adam (AdamW mode): ZeRO-Offload steps the optimizer on the CPU copy of the weights.

    Its kernel is JIT-built once (≈50 s on this machine, by ``make install``: :func:`build_cpu_ops`); a torch
    AdamW would be refused by DeepSpeed for offload, and would be slow there anyway.
    """
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    params = [p for p in module.parameters() if p.requires_grad]
    return DeepSpeedCPUAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, adamw_mode=True)


class DeepSpeedStrategy:
    """DeepSpeed ZeRO 1/2/3 on the process group Ray Train set up (gloo on CPU, nccl on GPU).

    A torch AdamW is handed to ``deepspeed.initialize`` so no fused/CPU Adam kernel is JIT-built
    (see MEASURED.md). Accumulation is ours (see :func:`deepspeed_config`): ``backward`` per
    micro-batch, ``step`` at our boundary. ZeRO partitions the optimizer state across ranks, so each
    rank saves and loads its own partition (:meth:`save_state`).
    """

    def __init__(self, module: nn.Module, optim: OptimConfig, ds: DeepSpeedConfig, rank: int, world_size: int):
        deepspeed = _import_deepspeed()
        _init_process_group(deepspeed, rank, world_size)
        self.rank, self.world_size, self.cfg = rank, world_size, optim
        optimizer = _offload_adam(module, optim) if ds.offload_optimizer else make_optimizer(module.parameters(), optim)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=module, optimizer=optimizer, config=deepspeed_config(ds, optim, world_size))
        self.module, self.stage = self.engine, ds.stage

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)  # divides by grad_accum; ZeRO 2/3 reduce-scatter here, every rank in step

    def step(self) -> float:
        """Reduce, clip, update; the global gradient norm before clipping (as ``clip_grad_norm_`` gives)."""
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def no_sync(self) -> ContextManager:
        return contextlib.nullcontext()  # unmanaged accumulation already defers the step

    def unwrapped(self) -> nn.Module:
        return self.engine.module

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Full parameters on every rank for the duration (ZeRO-3 partitions them); call on every rank."""
        if self.stage != 3:
            yield
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(self.engine.module.parameters()), modifier_rank=None):
            yield

    def save_state(self, out: Path) -> None:
        """Every rank writes its ZeRO partition of the optimizer (and engine) state under ``out/deepspeed``.

        Collective: call on every rank. Under Ray Train every rank reports its directory and the
        files merge into one checkpoint.
        """
        self.engine.save_checkpoint(str(out / DEEPSPEED_DIR), tag=DEEPSPEED_TAG, exclude_frozen_parameters=True)

    def load_state(self, root: Path) -> None:
        """Restore each rank's partition (the world size must match the one that saved it)."""
        if (root / DEEPSPEED_DIR / DEEPSPEED_TAG).is_dir():
            path, _ = self.engine.load_checkpoint(str(root / DEEPSPEED_DIR), tag=DEEPSPEED_TAG,
                                                  load_optimizer_states=True, load_lr_scheduler_states=False,
                                                  load_module_strict=False)
            if path is None:
                raise RuntimeError(f"DeepSpeed could not load the checkpoint in {root / DEEPSPEED_DIR}; fix: resume "
                                   "with the same learner.num_workers and ZeRO stage that wrote it")
