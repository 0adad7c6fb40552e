"""KL estimators k1/k2/k3 and the KL coefficient controllers."""

from __future__ import annotations

import pytest
import torch

from ouro_ray.algos import AdaptiveKLController, FixedKLController, kl_penalty


def _ratio_two():
    # pi = 0.25, pi_ref = 0.5 -> r = pi_ref / pi = 2, log r = 0.693147
    return torch.log(torch.tensor([[0.25]])), torch.log(torch.tensor([[0.5]]))


def test_estimators_at_r_equal_two():
    logprobs, ref_logprobs = _ratio_two()
    # k1 = -log r = -0.693147
    assert kl_penalty(logprobs, ref_logprobs, "k1").item() == pytest.approx(-0.693147, abs=1e-6)
    # k2 = 0.5 * 0.693147^2 = 0.5 * 0.480453 = 0.240227
    assert kl_penalty(logprobs, ref_logprobs, "k2").item() == pytest.approx(0.240227, abs=1e-6)
    # k3 = (2 - 1) - 0.693147 = 0.306853
    assert kl_penalty(logprobs, ref_logprobs, "k3").item() == pytest.approx(0.306853, abs=1e-6)


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_estimators_vanish_when_policy_equals_reference(kind):
    logprobs = torch.log(torch.tensor([[0.1, 0.7, 0.2]]))
    assert torch.equal(kl_penalty(logprobs, logprobs.clone(), kind), torch.zeros(1, 3))


def test_k1_and_k3_are_unbiased_estimates_of_kl_pi_ref():
    # exact over a 3-token vocabulary: sample a ~ pi with weights pi(a)
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    ref = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    kl_exact = (pi * (pi.log() - ref.log())).sum()  # KL(pi || pi_ref)
    for kind in ("k1", "k3"):
        expectation = (pi * kl_penalty(pi.log()[None], ref.log()[None], kind)[0]).sum()
        assert expectation.item() == pytest.approx(kl_exact.item())


def test_invalid_kind_lists_valid_kinds():
    logprobs, ref_logprobs = _ratio_two()
    with pytest.raises(ValueError, match="valid kinds: k1, k2, k3"):
        kl_penalty(logprobs, ref_logprobs, "kl")


def test_adaptive_controller_one_update_above_target():
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    # error = clip((9 - 6) / 6 = 0.5, -0.2, 0.2) = 0.2; mult = 1 + 0.2 * 256 / 10000 = 1.00512
    # 0.1 * 1.00512 = 0.100512
    assert ctl.update(current_kl=9.0, n_steps=256) == pytest.approx(0.100512)
    assert ctl.value == pytest.approx(0.100512)


def test_adaptive_controller_one_update_below_target():
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    # error = (5.7 - 6) / 6 = -0.05 (inside the clip); mult = 1 - 0.05 * 1000 / 10000 = 0.995
    ctl.update(torch.tensor(5.7), n_steps=1000)
    assert ctl.value == pytest.approx(0.0995)


def test_fixed_controller_does_not_move():
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 1000) == 0.05
    assert ctl.value == 0.05


@pytest.mark.parametrize("kwargs, match", [
    ({"init_kl_coef": -0.1, "target": 6.0, "horizon": 10}, "init_kl_coef"),
    ({"init_kl_coef": 0.1, "target": 0.0, "horizon": 10}, "target must be > 0"),
    ({"init_kl_coef": 0.1, "target": 6.0, "horizon": 0}, "horizon must be > 0"),
])
def test_adaptive_controller_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveKLController(**kwargs)

