"""One ``seed`` for the whole run: every random stream (Python, NumPy, torch, each Ray actor) is
derived from it, so a run is reproducible and no two roles share a stream by accident."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def derive_seed(seed: int, *names: object) -> int:
    """A stable 31-bit seed for a named stream, e.g. ``derive_seed(seed, "rollout", 3)``.

    Uses SHA-256 rather than ``hash()``, which is salted per process.
    """
    text = "/".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int, *names: object) -> int:
    """Seed Python, NumPy and torch (all devices) for this process; returns the seed used.

    With ``names`` the process gets its own derived stream (a worker), otherwise ``seed`` itself.
    """
    used = derive_seed(seed, *names) if names else seed
    random.seed(used)
    np.random.seed(used)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))  # inherited by processes started after this
    import torch  # imported here: the config and data layers stay importable without torch

    torch.manual_seed(used)
    return used
