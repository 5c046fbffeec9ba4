"""Argument checks shared by the spectral routines: each error names the argument and what is allowed."""

from __future__ import annotations

import operator
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
    check_values(weight, name)
    return weight.dim() - 2


def check_values(weight: torch.Tensor, name: str = "weight") -> None:
    """Refuse what would fail deep inside torch or give a meaningless spectrum: a complex, integer or half
    precision tensor (FFTs and ``eigh`` need float32 or float64), an empty one, NaN or inf entries.

    The finiteness test synchronises a GPU once; the spectral routines that call it synchronise anyway.
    """
    if weight.is_complex() or weight.dtype not in (torch.float32, torch.float64):
        hint = "; convert it with .float()" if weight.is_floating_point() else ""
        raise ValueError(f"{name} must be a real floating-point tensor, float32 or float64; got {weight.dtype}{hint}")
    if weight.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(weight.shape)}): every dimension must be at least 1")
    finite = torch.isfinite(weight)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        kinds = ", ".join(k for k, m in (("NaN", torch.isnan(weight)), ("inf", torch.isinf(weight))) if bool(m.any()))
        raise ValueError(f"{name} has {bad} non-finite entries ({kinds}) of {weight.numel()}: its spectrum is undefined")


def as_tuple(value: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    """``value`` as a d-tuple of positive ints (an int is repeated)."""
    try:  # operator.index: ints (numpy's too) pass, 32.5 or "32" is refused rather than truncated
        out = (operator.index(value),) * d if not isinstance(value, (tuple, list)) else tuple(map(operator.index, value))
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of {d} ints (whole numbers); got {value!r}") from None
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
    """An int (not a bool: ``True`` is no count) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def check_choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_unit_interval(value: float, name: str) -> float:
    """A number strictly between 0 and 1."""
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in the open interval (0, 1); got {value}")
    return value
