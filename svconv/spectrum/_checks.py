"""Argument checks shared by the spectral routines: each error names the argument and what is allowed."""

from __future__ import annotations

from typing import Sequence

import torch


def check_weight(weight: torch.Tensor, name: str = "weight") -> int:
    """Spatial rank d of a conv kernel ``(c_out, c_in, k_1, ..., k_d)``; d must be 2 or 3."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() not in (4, 5):
        raise ValueError(
            f"{name} must have 4 or 5 dimensions (c_out, c_in, k_1, ..., k_d) with d in {{2, 3}}; "
            f"got shape {tuple(weight.shape)}"
        )
    if weight.is_complex() or not weight.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point tensor (float32 or float64); got {weight.dtype}")
    return weight.dim() - 2


def as_tuple(value: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    """``value`` as a d-tuple of positive ints (an int is repeated)."""
    if isinstance(value, int):
        out = (value,) * d
    else:
        out = tuple(int(v) for v in value)
        if len(out) != d:
            raise ValueError(f"{name} must be an int or a sequence of {d} ints; got {value!r}")
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must be positive; got {value!r}")
    return out


def check_geometry(
    weight: torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int]
) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Validate a periodic-convolution geometry: returns ``(d, n, s, m)`` with ``m = n / s``.

    Requires every kernel size ``k_j <= n_j`` and every stride ``s_j`` to divide ``n_j``.
    """
    d = check_weight(weight)
    n = as_tuple(input_size, d, "input_size")
    s = as_tuple(stride, d, "stride")
    k = tuple(weight.shape[2:])
    if any(kj > nj for kj, nj in zip(k, n)):
        raise ValueError(f"input_size must be at least the kernel size {k} in every dimension; got {n}")
    if any(nj % sj for nj, sj in zip(n, s)):
        raise ValueError(f"stride must divide input_size {n} in every dimension; got stride {s}")
    return d, n, s, tuple(nj // sj for nj, sj in zip(n, s))


def check_positive(value: float, name: str) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value}")
    return value


def check_count(value: int, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value
