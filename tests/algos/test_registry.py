"""The loss and advantage-estimator registry, and the masked reductions."""

from __future__ import annotations

import pytest
import torch

from ouro_ray.algos import (
    dpo_loss,
    gae,
    get_advantage_estimator,
    get_loss,
    grpo_advantages,
    masked_mean,
    masked_sum,
    masked_var,
    ppo_policy_loss,
    value_loss,
)


def test_losses_by_name():
    assert get_loss("ppo_clip") is ppo_policy_loss
    assert get_loss("value_clip") is value_loss
    args = (torch.tensor([-1.0]), torch.tensor([-2.0]), torch.zeros(1), torch.zeros(1))
    for name, kind in (("dpo_sigmoid", "sigmoid"), ("ipo", "ipo")):
        loss, _ = get_loss(name)(*args, beta=0.1)
        assert loss.item() == pytest.approx(dpo_loss(*args, beta=0.1, kind=kind)[0].item())


def test_advantage_estimators_by_name():
    assert get_advantage_estimator("gae") is gae
    assert get_advantage_estimator("grpo") is grpo_advantages


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid names: bradley_terry, dpo_sigmoid, ipo, ppo_clip, value_clip"):
        get_loss("dpo")
    with pytest.raises(ValueError, match="valid names: gae, grpo"):
        get_advantage_estimator("vtrace")


def test_masked_reductions_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # valid 1, 2, 4: sum 7, token mean 7 / 3 = 2.333333
    assert masked_sum(x, mask).item() == 7.0
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    # per row: (1 + 2) / 2 = 1.5 and 4 / 1 = 4
    torch.testing.assert_close(masked_mean(x, mask, dim=-1), torch.tensor([1.5, 4.0]))
    # mean 7/3; squared deviations 16/9, 1/9, 25/9 -> sum 42/9 = 4.666667; / 3 = 1.555556
    assert masked_var(x, mask).item() == pytest.approx(14 / 9)
    # unbiased: 42/9 / 2 = 2.333333
    assert masked_var(x, mask, unbiased=True).item() == pytest.approx(7 / 3)


def test_masked_mean_of_empty_mask_is_zero():
    assert masked_mean(torch.ones(2, 2), torch.zeros(2, 2)).item() == 0.0
    with pytest.raises(ValueError, match="at least 2 valid positions"):
        masked_var(torch.ones(2, 2), torch.tensor([[1, 0], [0, 0]]), unbiased=True)
