"""Masked reductions and argument checks shared by the loss modules.

Notation (every module in ``ouro_ray.algos``):
    B     batch size (candidates, or preference pairs for DPO)
    T     response length in tokens (right-padded)
    V     vocabulary size
    mask  (B, T), 1 on response tokens and 0 on padding; bool or float

Reductions over a mask divide by ``mask.sum()`` clamped to 1e-8: with a 0/1 mask the result is
exact, and an all-padding mask gives 0 rather than NaN (the numerator is 0 too), so one empty
micro-batch cannot poison the gradients of a whole step.
"""

from __future__ import annotations

from typing import Optional

import torch

_EMPTY_MASK_FLOOR = 1e-8


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Sum of ``x`` over positions where ``mask`` is 1 (all of it, or along ``dim``)."""
    check_same_shape(x=x, mask=mask)
    weighted = x * mask.to(x.dtype)
    return weighted.sum() if dim is None else weighted.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1; 0 where no position is valid.

    ``dim=None`` is the token mean over the whole batch (every valid token weighs the same);
    ``dim=-1`` gives one mean per row, (B, T) -> (B,).
    """
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp_min(_EMPTY_MASK_FLOOR)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Variance of ``x`` over the valid positions (all dims together), a 0-d tensor.

    ``unbiased=False`` is the population variance, mean((x - mean)^2); ``unbiased=True`` applies
    Bessel's correction n / (n - 1) and raises if fewer than two positions are valid.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if not unbiased:
        return var
    count = mask.to(x.dtype).sum()
    if count < 2:
        raise ValueError(f"masked_var(unbiased=True) needs at least 2 valid positions, mask has "
                         f"{int(count)}; use unbiased=False or pass more tokens")
    return var * count / (count - 1)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label_t | x_<t) for each position: logits (B, T, V), labels (B, T) -> (B, T).

    ``logits[:, t]`` must already be the prediction for ``labels[:, t]`` (shifted by the caller).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"token_logprobs needs logits (B, T, V) and labels (B, T); got logits "
                         f"{tuple(logits.shape)} and labels {tuple(labels.shape)}")
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return logp.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)  # (B, T)


def check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise ValueError naming each argument and its shape unless all shapes are equal."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; these arguments must have the same shape")


def check_ndim(name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    """Raise ValueError unless ``x`` has ``ndim`` dimensions (``layout`` is e.g. "(B, T)")."""
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {layout}, got shape {tuple(x.shape)}")


def check_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` > 0."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}; pass a positive number")


def check_unit_interval(name: str, value: float) -> None:
    """Raise ValueError unless 0 <= ``value`` <= 1."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def check_right_padded(mask: torch.Tensor) -> None:
    """Raise ValueError unless every row of ``mask`` (B, T) is 1...1 0...0 (right padding)."""
    m = mask.to(torch.int8)
    if m.shape[-1] > 1 and bool((m[:, 1:] > m[:, :-1]).any()):
        rows = torch.nonzero((m[:, 1:] > m[:, :-1]).any(dim=-1)).flatten().tolist()
        raise ValueError(f"mask rows {rows[:8]} are not right-padded (a valid token follows a "
                         "padded one); left-padded responses must be shifted to the left first")
