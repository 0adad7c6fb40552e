"""A checkpoint is data, never code: the optimizer state loads with ``torch.load(weights_only=True)``, so a
file carrying a pickled callable is refused instead of run."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from ouro_ray.config.learner import OptimConfig
from ouro_ray.learner.strategy import OPTIMIZER_FILE, LocalStrategy


class _Payload:
    """What a tampered checkpoint would carry: unpickling it runs a command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_the_optimizer_state_round_trips_and_a_pickled_callable_is_refused(tmp_path):
    module = torch.nn.Linear(2, 1)
    strategy = LocalStrategy(module, OptimConfig())
    module(torch.ones(1, 2)).sum().backward()
    strategy.step()
    strategy.save_state(tmp_path)
    fresh = LocalStrategy(torch.nn.Linear(2, 1), OptimConfig())
    fresh.load_state(tmp_path)  # plain tensors and numbers: loads
    assert fresh.optimizer.state_dict()["state"][0]["step"] == strategy.optimizer.state_dict()["state"][0]["step"]

    torch.save({"state": {}, "param_groups": [], "x": _Payload()}, tmp_path / OPTIMIZER_FILE)
    with pytest.raises(pickle.UnpicklingError):
        fresh.load_state(tmp_path)
