"""Ragged Arrow token columns to padded torch tensors and back, without a Python loop over rows.

A ``list<…>`` column is a flat value buffer plus row offsets. Padding is one scatter: for value ``j``
of row ``i`` the target cell is ``(i, j - offsets[i])`` (shifted right by ``T - T_i`` for left
padding). Shapes: ``B`` rows, ``T = max_i T_i``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pyarrow as pa
import torch


def _as_list_array(column: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise TypeError(f"expected an Arrow list column, got {arr.type}")
    if arr.null_count:
        raise ValueError(f"list column has {arr.null_count} null rows; validate the batch first (nulls cannot be padded)")
    return arr


def list_lengths(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(B,) int64 number of items in each row."""
    offsets = _as_list_array(column).offsets.to_numpy()
    return np.diff(offsets).astype(np.int64)


def pad_lists(
    column: pa.Array | pa.ChunkedArray,
    *,
    pad_value: float | int = 0,
    side: Literal["left", "right"] = "right",
    dtype: torch.dtype = torch.long,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, mask)``, both (B, T): row i's items in order, padded with ``pad_value`` on ``side``.

    ``mask`` is a bool tensor, True on real items.
    """
    arr = _as_list_array(column)
    offsets = arr.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(offsets)  # (B,)
    n_rows = len(lengths)
    width = int(lengths.max()) if n_rows else 0
    flat = arr.flatten().to_numpy(zero_copy_only=False)  # values of this slice only, in row order
    rows = np.repeat(np.arange(n_rows), lengths)  # row of each flat value
    cols = np.arange(len(flat)) - np.repeat(offsets[:-1] - offsets[0], lengths)  # position inside its row
    if side == "left":
        cols = cols + (width - lengths)[rows]
    elif side != "right":
        raise ValueError(f"side = {side!r}: use 'left' or 'right'")
    values = torch.full((n_rows, width), pad_value, dtype=dtype)
    mask = torch.zeros((n_rows, width), dtype=torch.bool)
    index = (torch.from_numpy(rows), torch.from_numpy(cols))
    with warnings.catch_warnings():  # ``flat`` is a read-only view of Arrow memory; it is only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        values[index] = torch.as_tensor(flat).to(dtype)
    mask[index] = True
    return values, mask


def unpad_to_lists(values: torch.Tensor, mask: torch.Tensor, value_type: pa.DataType) -> pa.ListArray:
    """The inverse of :func:`pad_lists`: a list column of each row's masked values, in order."""
    if values.shape != mask.shape or values.dim() != 2:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} must be the same (B, T) shape")
    mask = mask.to(torch.bool)
    lengths = mask.sum(dim=1).numpy().astype(np.int32)  # (B,)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    flat = values[mask].detach().cpu().numpy()  # row-major: each row's values stay contiguous and ordered
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, value_type))


def arrays_to_lists(arrays: list[np.ndarray], value_type: pa.DataType) -> pa.ListArray:
    """A list column from per-row numpy arrays (one concatenate; no per-value Python work)."""
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, value_type))
