"""GAE: hand-worked values, and the vectorised GAE against a loop reference."""

from __future__ import annotations

import pytest
import torch

from ouro_ray.algos import gae


def gae_reference(rewards, values, mask, gamma, lam):
    """Textbook GAE, one row and one token at a time, on plain Python floats (the oracle)."""
    advantages = [[0.0] * len(row) for row in rewards]
    returns = [[0.0] * len(row) for row in rewards]
    for b in range(len(rewards)):
        length = sum(int(m) for m in mask[b])
        running = 0.0
        for t in reversed(range(length)):
            next_value = values[b][t + 1] if t + 1 < length else 0.0  # episode ends: no bootstrap
            delta = rewards[b][t] + gamma * next_value - values[b][t]
            running = delta + gamma * lam * running
            advantages[b][t] = running
            returns[b][t] = running + values[b][t]
    return advantages, returns


def test_three_token_example_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.6, 0.7]], dtype=torch.float64)
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.95)
    # gamma * lam = 0.855
    # t=2: delta = 1 + 0.9 * 0 - 0.7 = 0.3                     A = 0.3
    # t=1: delta = 0 + 0.9 * 0.7 - 0.6 = 0.03                  A = 0.03 + 0.855 * 0.3 = 0.2865
    # t=0: delta = 0 + 0.9 * 0.6 - 0.5 = 0.04                  A = 0.04 + 0.855 * 0.2865 = 0.2849575
    torch.testing.assert_close(adv, torch.tensor([[0.2849575, 0.2865, 0.3]], dtype=torch.float64))
    # returns = A + V = [0.7849575, 0.8865, 1.0]
    torch.testing.assert_close(ret, torch.tensor([[0.7849575, 0.8865, 1.0]], dtype=torch.float64))


def test_padding_is_ignored_and_zero():
    # the same row padded by one token holding garbage: identical values, zeros on the padding
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]], dtype=torch.float64)
    adv, ret = gae(rewards, values, torch.tensor([[1, 1, 1, 0]]), gamma=0.9, lam=0.95)
    f64 = torch.float64
    torch.testing.assert_close(adv, torch.tensor([[0.2849575, 0.2865, 0.3, 0.0]], dtype=f64))
    torch.testing.assert_close(ret, torch.tensor([[0.7849575, 0.8865, 1.0, 0.0]], dtype=f64))


def test_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.1, -0.2, 1.0]], dtype=torch.float64)
    values = torch.tensor([[0.3, 0.4, 0.5]], dtype=torch.float64)
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    # reward-to-go: [0.1 - 0.2 + 1.0, -0.2 + 1.0, 1.0] = [0.9, 0.8, 1.0]
    # A = reward-to-go - V = [0.6, 0.4, 0.5]; returns = reward-to-go
    torch.testing.assert_close(adv, torch.tensor([[0.6, 0.4, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[0.9, 0.8, 1.0]], dtype=torch.float64))


def _random_ragged(seed: int, batch: int = 8, length: int = 9):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, length, generator=g, dtype=torch.float64)
    values = torch.randn(batch, length, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length  # at least one full row
    mask = (torch.arange(length)[None, :] < lengths[:, None]).to(torch.float64)  # (B, T)
    return rewards, values, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma, lam", [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_vectorised_matches_loop_reference(seed, gamma, lam):
    rewards, values, mask = _random_ragged(seed)
    adv, ret = gae(rewards, values, mask, gamma, lam)
    ref_adv, ref_ret = gae_reference(rewards.tolist(), values.tolist(), mask.tolist(), gamma, lam)
    torch.testing.assert_close(adv, torch.tensor(ref_adv, dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor(ref_ret, dtype=torch.float64))


def test_gamma_lambda_one_matches_cumsum_on_ragged_rows():
    rewards, values, mask = _random_ragged(3)
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    reward_to_go = torch.flip(torch.cumsum(torch.flip(rewards * mask, [1]), 1), [1])  # (B, T)
    torch.testing.assert_close(adv, (reward_to_go - values) * mask)


def test_gae_rejects_bad_arguments():
    x = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="not right-padded"):
        gae(x, x, torch.tensor([[0, 1, 1]]), gamma=1.0, lam=1.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        gae(x, x, torch.ones(1, 3), gamma=1.5, lam=1.0)
    with pytest.raises(ValueError, match=r"values \(1, 2\)"):
        gae(x, torch.zeros(1, 2), torch.ones(1, 3), gamma=1.0, lam=1.0)


