"""DPO and IPO losses: hand-worked numbers, metrics, gradient direction, argument errors."""

from __future__ import annotations

import pytest
import torch

from ouro_ray.algos import dpo_loss


def _pairs():
    # pair 0: chosen log-ratio -10 - (-12) = +2, rejected log-ratio -15 - (-13) = -2, so h = 4
    # pair 1: chosen log-ratio -11 - (-10) = -1, rejected log-ratio -9 - (-10) = +1, so h = -2
    policy_chosen = torch.tensor([-10.0, -11.0], dtype=torch.float64)
    policy_rejected = torch.tensor([-15.0, -9.0], dtype=torch.float64)
    ref_chosen = torch.tensor([-12.0, -10.0], dtype=torch.float64)
    ref_rejected = torch.tensor([-13.0, -10.0], dtype=torch.float64)
    return policy_chosen, policy_rejected, ref_chosen, ref_rejected


def test_sigmoid_single_pair_by_hand():
    pc, pr, rc, rr = (t[:1] for t in _pairs())
    loss, metrics = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # beta * h = 0.1 * 4 = 0.4; -log sigmoid(0.4) = log(1 + e^-0.4) = log(1.670320) = 0.513015
    assert loss.item() == pytest.approx(0.513015, abs=1e-6)
    # rewards: 0.1 * 2 = 0.2 and 0.1 * -2 = -0.2; margin 0.4; chosen ahead, accuracy 1
    assert metrics["chosen_rewards"].item() == pytest.approx(0.2)
    assert metrics["rejected_rewards"].item() == pytest.approx(-0.2)
    assert metrics["reward_margin"].item() == pytest.approx(0.4)
    assert metrics["accuracy"].item() == 1.0


def test_sigmoid_batch_mean_and_metrics():
    loss, metrics = dpo_loss(*_pairs(), beta=0.1)
    # pair 1: beta * h = -0.2; -log sigmoid(-0.2) = log(1 + e^0.2) = log(2.221403) = 0.798139
    # batch mean: (0.513015 + 0.798139) / 2 = 0.655577
    assert loss.item() == pytest.approx(0.655577, abs=1e-6)
    # chosen rewards 0.2 and -0.1 -> mean 0.05; rejected -0.2 and 0.1 -> mean -0.05
    assert metrics["chosen_rewards"].item() == pytest.approx(0.05)
    assert metrics["rejected_rewards"].item() == pytest.approx(-0.05)
    # margins 0.4 and -0.2 -> mean 0.1; only pair 0 has chosen > rejected -> accuracy 0.5
    assert metrics["reward_margin"].item() == pytest.approx(0.1)
    assert metrics["accuracy"].item() == 0.5


def test_sigmoid_label_smoothing_by_hand():
    pc, pr, rc, rr = (t[:1] for t in _pairs())
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, label_smoothing=0.1)
    # -log sigmoid(-0.4) = log(1 + e^0.4) = log(2.491825) = 0.913015
    # 0.9 * 0.513015 + 0.1 * 0.913015 = 0.461714 + 0.091302 = 0.553015
    assert loss.item() == pytest.approx(0.553015, abs=1e-6)


def test_ipo_by_hand():
    loss, metrics = dpo_loss(*_pairs(), beta=0.1, kind="ipo")
    # 1 / (2 beta) = 5; pair 0: (4 - 5)^2 = 1; pair 1: (-2 - 5)^2 = 49; mean (1 + 49) / 2 = 25
    assert loss.item() == pytest.approx(25.0)
    assert metrics["reward_margin"].item() == pytest.approx(0.1)  # the same implicit rewards


def test_ipo_minimum_at_h_equals_half_inverse_beta():
    # beta = 0.25 -> 1 / (2 beta) = 2; chosen log-ratio 1, rejected -1 -> h = 2 -> loss 0
    zero = torch.zeros(1)
    loss, _ = dpo_loss(torch.tensor([1.0]), torch.tensor([-1.0]), zero, zero, beta=0.25, kind="ipo")
    assert loss.item() == pytest.approx(0.0)


def test_gradient_pushes_chosen_up_and_rejected_down():
    pc, pr, rc, rr = (t[:1].clone() for t in _pairs())
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    loss.backward()
    # d/d pc of -log sigmoid(beta h) = -beta * sigmoid(-beta h) = -0.1 * sigmoid(-0.4)
    #                                = -0.1 * 0.401312 = -0.0401312; descent raises pc
    assert pc.grad.item() == pytest.approx(-0.0401312, abs=1e-6)
    assert pr.grad.item() == pytest.approx(+0.0401312, abs=1e-6)
    # one gradient step raises the loss's argument: the chosen logp goes up, the loss goes down
    with torch.no_grad():
        new_loss, _ = dpo_loss(pc - pc.grad, pr - pr.grad, rc, rr, beta=0.1)
    assert new_loss.item() < loss.item()


def test_ipo_gradient_pushes_chosen_up_below_target():
    pc = torch.tensor([0.0], requires_grad=True)
    zero = torch.zeros(1)
    loss, _ = dpo_loss(pc, zero, zero, zero, beta=0.1, kind="ipo")
    loss.backward()
    # d/d pc (h - 5)^2 = 2 (0 - 5) = -10
    assert pc.grad.item() == pytest.approx(-10.0)


def test_metrics_are_detached():
    pc = torch.tensor([-1.0], requires_grad=True)
    _, metrics = dpo_loss(pc, torch.tensor([-2.0]), torch.zeros(1), torch.zeros(1), beta=0.1)
    assert all(not m.requires_grad for m in metrics.values())


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "kto"}, "valid kinds: sigmoid, ipo"),
    ({"beta": 0.0}, "beta must be > 0"),
    ({"label_smoothing": 0.5}, "label_smoothing=0.5"),
    ({"kind": "ipo", "label_smoothing": 0.1}, "kind='sigmoid' only"),
])
def test_invalid_arguments_raise(kwargs, match):
    args = {"beta": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        dpo_loss(*_pairs(), **args)


def test_shape_mismatch_names_arguments():
    pc, pr, rc, rr = _pairs()
    with pytest.raises(ValueError, match="ref_rejected_logps"):
        dpo_loss(pc, pr, rc, rr[:1], beta=0.1)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        dpo_loss(pc[None], pr[None], rc[None], rr[None], beta=0.1)

