"""PPO clipped surrogate and clipped value loss: hand-worked numbers for every clipping case."""

from __future__ import annotations

import math

import pytest
import torch

from ouro_ray.algos import ppo_policy_loss, value_loss

E = math.e


def _one_token(log_ratio: float, advantage: float, clip_eps: float = 0.2):
    logprobs = torch.tensor([[log_ratio]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=torch.float64)
    adv = torch.tensor([[advantage]], dtype=torch.float64)
    loss, metrics = ppo_policy_loss(logprobs, old, adv, torch.ones(1, 1), clip_eps)
    loss.backward()
    return loss.item(), metrics, logprobs.grad.item()


def test_positive_advantage_above_band_is_clipped():
    # STYLE.md §9: log-ratio 1 -> r = e = 2.718282; A = 1, eps = 0.2
    # unclipped -A r = -2.718282; clipped -A clip(r, 0.8, 1.2) = -1.2; max -> -1.2
    loss, metrics, grad = _one_token(1.0, 1.0)
    assert loss == pytest.approx(-1.2)
    assert metrics["clip_fraction"].item() == 1.0
    assert grad == 0.0  # the clipped term is constant in r: no gradient


def test_positive_advantage_inside_band_is_not_clipped():
    # r = 1.1 inside [0.8, 1.2]: both terms -1.1; loss -1.1, gradient d(-A r)/d log r = -r = -1.1
    loss, metrics, grad = _one_token(math.log(1.1), 1.0)
    assert loss == pytest.approx(-1.1)
    assert metrics["clip_fraction"].item() == 0.0
    assert grad == pytest.approx(-1.1)


def test_negative_advantage_above_band_keeps_gradient():
    # A = -1, r = e: unclipped 2.718282, clipped 1.2; max -> 2.718282 (pessimistic bound)
    loss, metrics, grad = _one_token(1.0, -1.0)
    assert loss == pytest.approx(E)
    assert metrics["clip_fraction"].item() == 0.0
    assert grad == pytest.approx(E)  # d(-A r)/d log r = -A r = e


def test_negative_advantage_below_band_is_clipped():
    # A = -1, r = 0.5: unclipped 0.5, clipped -A * 0.8 = 0.8; max -> 0.8
    loss, metrics, grad = _one_token(math.log(0.5), -1.0)
    assert loss == pytest.approx(0.8)
    assert metrics["clip_fraction"].item() == 1.0
    assert grad == 0.0


def test_positive_advantage_below_band_keeps_gradient():
    # A = 2, r = 0.5: unclipped -1.0, clipped -2 * 0.8 = -1.6; max -> -1.0
    loss, metrics, _ = _one_token(math.log(0.5), 2.0)
    assert loss == pytest.approx(-1.0)
    assert metrics["clip_fraction"].item() == 0.0


def test_token_mean_over_ragged_batch_and_metrics():
    # row 0: the cases (log r = 1, A = 1), (r = 1.1, A = 1), (log r = 1, A = -1)
    # row 1: (r = 0.5, A = -1), (r = 0.5, A = 2), then padding holding garbage
    logprobs = torch.tensor([[1.0, math.log(1.1), 1.0], [math.log(0.5), math.log(0.5), 50.0]],
                            dtype=torch.float64)
    old = torch.zeros(2, 3, dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0, -1.0], [-1.0, 2.0, 1e6]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss, metrics = ppo_policy_loss(logprobs, old, adv, mask, clip_eps=0.2)
    # per-token losses -1.2, -1.1, 2.718282, 0.8, -1.0: sum 0.218282, / 5 valid = 0.0436564
    assert loss.item() == pytest.approx(0.0436564, abs=1e-6)
    # clipping active on tokens 1 and 4 of 5 -> 0.4
    assert metrics["clip_fraction"].item() == pytest.approx(0.4)
    # ratios e, 1.1, e, 0.5, 0.5: sum 7.536564, / 5 = 1.507313
    assert metrics["ratio_mean"].item() == pytest.approx(1.507313, abs=1e-6)
    # k3 = (r - 1) - log r: e -> 0.718282; 1.1 -> 0.1 - 0.095310 = 0.004690; 0.5 -> 0.193147
    # (2 * 0.718282 + 0.004690 + 2 * 0.193147) / 5 = 1.827548 / 5 = 0.365510
    assert metrics["approx_kl"].item() == pytest.approx(0.365510, abs=1e-6)


def test_ppo_rejects_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="clip_eps must be > 0"):
        ppo_policy_loss(x, x, x, x, clip_eps=0.0)
    with pytest.raises(ValueError, match=r"advantages \(2, 2\)"):
        ppo_policy_loss(x, x, torch.zeros(2, 2), x, clip_eps=0.2)


def _value_batch():
    # row 0: (old 0, V 0.5, R 1), (old 0, V 0.1, R 1); row 1: (old 0, V 0.5, R 0.3), padding
    values = torch.tensor([[0.5, 0.1], [0.5, 9.0]], dtype=torch.float64, requires_grad=True)
    old_values = torch.zeros(2, 2, dtype=torch.float64)
    returns = torch.tensor([[1.0, 1.0], [0.3, -9.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return values, old_values, returns, mask


def test_value_loss_by_hand():
    values, old_values, returns, mask = _value_batch()
    loss, metrics = value_loss(values, old_values, returns, mask, clip_eps=0.2)
    # token a: V_clipped = 0 + clip(0.5, -0.2, 0.2) = 0.2; (0.5-1)^2 = 0.25, (0.2-1)^2 = 0.64
    #          -> 0.5 * 0.64 = 0.32, clipped term active
    # token b: V_clipped = 0.1 (inside); both 0.81 -> 0.405, not clipped (tie)
    # token c: V_clipped = 0.2; (0.5-0.3)^2 = 0.04, (0.2-0.3)^2 = 0.01 -> 0.5 * 0.04 = 0.02
    # token mean: (0.32 + 0.405 + 0.02) / 3 = 0.745 / 3 = 0.248333
    assert loss.item() == pytest.approx(0.248333, abs=1e-6)
    assert metrics["value_clip_fraction"].item() == pytest.approx(1 / 3)
    # R = [1, 1, 0.3]: mean 0.766667, Var = (0.054444 + 0.054444 + 0.217778) / 3 = 0.108889
    # R - V = [0.5, 0.9, -0.2]: mean 0.4, Var = (0.01 + 0.25 + 0.36) / 3 = 0.206667
    # EV = 1 - 0.206667 / 0.108889 = 1 - 1.897959 = -0.897959
    assert metrics["explained_variance"].item() == pytest.approx(-0.897959, abs=1e-6)
    assert metrics["value_mean"].item() == pytest.approx((0.5 + 0.1 + 0.5) / 3)
    loss.backward()
    # token a is clipped: no gradient; token b: d/dV 0.5 (V - R)^2 / 3 = (0.1 - 1) / 3 = -0.3
    assert values.grad[0, 0].item() == 0.0
    assert values.grad[0, 1].item() == pytest.approx(-0.3)
    assert values.grad[1, 1].item() == 0.0  # padding


def test_value_loss_keeps_unclipped_when_it_is_larger():
    # old 1, V 0, R 2: V_clipped = 0.8; (0-2)^2 = 4 > (0.8-2)^2 = 1.44 -> 0.5 * 4 = 2
    loss, metrics = value_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.tensor([[2.0]]),
                               torch.ones(1, 1), clip_eps=0.2)
    assert loss.item() == pytest.approx(2.0)
    assert metrics["value_clip_fraction"].item() == 0.0
    assert metrics["explained_variance"].item() == 0.0  # a single return has Var(R) = 0
