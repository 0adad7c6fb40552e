"""The typed PPO batch: an experience table read into tensors with the shapes its docstring names."""

from __future__ import annotations

import pyarrow as pa
import torch

from ouro_ray.learner.batches import PPOBatch


def _experience() -> pa.Table:
    return pa.table({
        "prompt_token_ids": pa.array([[5, 6, 7], [8]], pa.list_(pa.int32())),
        "token_ids": pa.array([[1, 2], [3, 4, 9]], pa.list_(pa.int32())),
        "old_logprobs": pa.array([[-1.0, -2.0], [-0.5, -0.5, -0.5]], pa.list_(pa.float32())),
        "ref_logprobs": pa.array([[-1.5, -2.5], [-1.0, -1.0, -1.0]], pa.list_(pa.float32())),
        "reward": pa.array([0.5, -1.0], pa.float32()),
    })


def test_shapes_padding_and_rows():
    t = PPOBatch.from_table(_experience(), pad_id=0)
    assert t.tokens.prompt.tolist() == [[5, 6, 7], [0, 0, 8]]  # (B, P) left-padded
    assert t.tokens.ids.tolist() == [[1, 2, 0], [3, 4, 9]]  # (B, T) right-padded
    assert t.mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    assert t.old_logprobs.tolist() == [[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]]
    assert t.reward.tolist() == [0.5, -1.0] and t.advantages is None
    second = t.rows(torch.tensor([1]))
    assert second.tokens.ids.tolist() == [[3, 4, 9]] and second.reward.tolist() == [-1.0]


def test_a_weight_zero_repeat_carries_no_token_and_advantages_travel_with_their_rows():
    t = PPOBatch.from_table(_experience(), pad_id=0).masked(torch.tensor([True, False]))
    assert t.mask.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    z = torch.zeros(2, 3)
    t = t.with_advantages(z, z + 1, torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]), z + 2)
    picked = t.rows(torch.tensor([1, 0]))
    assert picked.advantages.tolist() == [[3.0, 4.0, 5.0], [1.0, 2.0, 0.0]] and picked.kl.tolist() == (z + 1).tolist()
