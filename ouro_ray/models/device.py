"""Which device a role puts its model on: the one its resources gave it.

One rule for every role that loads a model (rollout, reference, reward model, judge, constitution writer,
AI summariser, learner): inside a Ray actor or task, CUDA only when Ray assigned it a GPU
(``ray.get_gpu_ids()``; Ray then narrows ``CUDA_VISIBLE_DEVICES`` to it), else the CPU, even on a GPU node,
since a GPU the actor did not reserve belongs to another role. In the driver or a plain process (in-process
groups, ``num_workers: 0``; the CLI), CUDA when torch sees a device.
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch


def assigned_gpu_ids() -> list | None:
    """The GPU ids Ray assigned this process when it is a Ray worker (an actor or a task); None otherwise
    (the driver, or no Ray at all)."""
    ray = sys.modules.get("ray")  # a process that never imported Ray is no Ray worker: do not import it here
    if ray is None or not ray.is_initialized():
        return None
    if ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    return list(ray.get_gpu_ids())


def pick_device(gpu_ids: Sequence | None = None, cuda_available: bool | None = None) -> torch.device:
    """The device for this process's model.

    ``gpu_ids``: the GPUs Ray assigned this worker (default: :func:`assigned_gpu_ids`; None means not a Ray
    worker). ``cuda_available``: whether torch sees CUDA (default: ``torch.cuda.is_available()``). Raises
    RuntimeError when Ray assigned GPUs that torch cannot use (a CPU build of torch on a GPU node)."""
    ids = assigned_gpu_ids() if gpu_ids is None else list(gpu_ids)
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if ids is not None and not ids:
        return torch.device("cpu")
    if not cuda:
        if ids:
            raise RuntimeError(f"Ray assigned this worker GPU(s) {ids}, but torch {torch.__version__} sees no CUDA "
                               "device; fix: install a CUDA build of torch on the GPU nodes (the CPU wheel cannot "
                               "use them), or set the role's num_gpus to 0")
        return torch.device("cpu")
    # Ray narrows CUDA_VISIBLE_DEVICES to the assigned GPUs and Ray Train sets each worker's current device,
    # so the current device is the one this process was given.
    return torch.device("cuda", torch.cuda.current_device())
