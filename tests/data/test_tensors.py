"""Ragged Arrow columns to padded tensors: hand-worked cases and the vectorised vs. loop reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from ouro_ray.data.tensors import arrays_to_lists, list_lengths, pad_lists, unpad_to_lists


def _loop_pad(rows, pad, side):
    width = max((len(r) for r in rows), default=0)
    out = []
    for r in rows:
        fill = [pad] * (width - len(r))
        out.append(fill + list(r) if side == "left" else list(r) + fill)
    return torch.tensor(out, dtype=torch.long).reshape(len(rows), width)


def test_pad_right_and_left_by_hand():
    col = pa.array([[5, 6, 7], [8], []], pa.list_(pa.int32()))
    right, mask = pad_lists(col, pad_value=0, side="right")
    assert right.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    left, lmask = pad_lists(col, pad_value=9, side="left")
    assert left.tolist() == [[5, 6, 7], [9, 9, 8], [9, 9, 9]]
    assert lmask.sum(1).tolist() == [3, 1, 0]


def test_slices_and_chunks_use_only_their_rows():
    col = pa.array([[1], [2, 3], [4, 5, 6], [7]], pa.list_(pa.int32()))
    values, _ = pad_lists(col.slice(1, 2))  # rows [2, 3] and [4, 5, 6]: offsets start at 1, not 0
    assert values.tolist() == [[2, 3, 0], [4, 5, 6]]
    chunked = pa.chunked_array([col.slice(0, 2), col.slice(2, 2)])
    assert pad_lists(chunked)[0].tolist() == _loop_pad([[1], [2, 3], [4, 5, 6], [7]], 0, "right").tolist()
    assert list_lengths(chunked).tolist() == [1, 2, 3, 1]


@pytest.mark.parametrize("side", ["left", "right"])
def test_vectorised_matches_loop_reference_on_random_ragged_rows(side):
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 100, size=rng.integers(0, 12)).tolist() for _ in range(50)]
    values, mask = pad_lists(pa.array(rows, pa.list_(pa.int32())), pad_value=-1, side=side)
    assert torch.equal(values, _loop_pad(rows, -1, side))
    back = unpad_to_lists(values, mask, pa.int32())
    assert back.to_pylist() == rows


def test_float_values_and_roundtrip_through_arrays():
    arrays = [np.array([-0.5, -1.0], np.float32), np.array([], np.float32), np.array([-2.0], np.float32)]
    col = arrays_to_lists(arrays, pa.float32())
    values, mask = pad_lists(col, pad_value=0.0, dtype=torch.float32)
    assert values.tolist() == [[-0.5, -1.0], [0.0, 0.0], [-2.0, 0.0]]
    assert unpad_to_lists(values, mask, pa.float32()).to_pylist() == [[-0.5, -1.0], [], [-2.0]]


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(TypeError, match="list column"):
        pad_lists(pa.array([1, 2]))
    with pytest.raises(ValueError, match="null rows"):
        pad_lists(pa.array([[1], None], pa.list_(pa.int32())))
    with pytest.raises(ValueError, match="side"):
        pad_lists(pa.array([[1]], pa.list_(pa.int32())), side="middle")
