"""Bradley-Terry reward-model loss on hand-worked numbers."""

from __future__ import annotations

import math

import pytest
import torch

from ouro_ray.algos import bradley_terry_loss


def test_bradley_terry_by_hand():
    # margins 2 - 1 = 1 and 0 - 1 = -1: loss = mean(-log σ(1), -log σ(-1)) = mean(0.31326, 1.31326) = 0.81326
    loss, m = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2, abs=1e-6)
    assert m["accuracy"].item() == 0.5 and m["margin"].item() == pytest.approx(0.0)
    assert m["chosen_rewards"].item() == pytest.approx(1.0) and m["rejected_rewards"].item() == pytest.approx(1.0)


def test_equal_rewards_cost_log_2_and_the_gradient_separates_them():
    chosen = torch.zeros(3, requires_grad=True)
    rejected = torch.zeros(3, requires_grad=True)
    loss, _ = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(math.log(2))  # -log σ(0)
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()  # descent raises chosen, lowers rejected


def test_shape_errors():
    with pytest.raises(ValueError):
        bradley_terry_loss(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))
