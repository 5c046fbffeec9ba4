"""Power-of-two rescaling of kernels whose entries would overflow (or underflow) a Gram matrix.

Singular values are homogeneous, ``sv(a W) = a sv(W)``, and so is clipping, ``clip(a W, a c) = a clip(W, c)``.
The exact routines square the transfer matrices (``P^H P``), so entries near ``sqrt(max float)``
(float32 ~1e19, float64 ~1e154) overflow to inf and ``eigh`` fails. Their entry points divide such a
kernel by a power of two ``2^e`` (exact in floating point: only the exponent changes) and multiply the
results back. Kernels in the ordinary range are left untouched, so their results do not change.
"""

from __future__ import annotations

import math

import torch


def _limits(dtype: torch.dtype) -> tuple[int, int]:
    """Exponents ``(low, high)`` of the largest entry between which no rescale is needed: a quarter of the
    dtype's exponent range, so that a Gram matrix of sums over a million products stays finite and normal."""
    info = torch.finfo(dtype)
    high = int(math.log2(info.max)) // 4  # float32: 31, float64: 255
    low = int(math.log2(info.tiny)) // 4  # float32: -32, float64: -256
    return low, high


def power_of_two_scale(weight: torch.Tensor) -> int:
    """The exponent ``e`` such that ``weight / 2^e`` has its largest entry in ``[0.5, 1)``, or 0 when the
    largest entry is within the range where the Gram route neither overflows nor underflows (or is 0).

    Anything else (not a non-empty float32/float64 tensor, NaN or inf entries) gives 0: the routine's own
    argument checks then refuse it with their message. One device synchronisation.
    """
    if not isinstance(weight, torch.Tensor) or weight.dtype not in (torch.float32, torch.float64) or weight.numel() == 0:
        return 0
    top = float(weight.detach().abs().max())
    if top == 0.0 or not math.isfinite(top):
        return 0
    low, high = _limits(weight.dtype)
    e = math.frexp(top)[1]  # top = mant * 2^e, mant in [0.5, 1)
    return e if e > high or e < low else 0


def scale_by_power_of_two(x: torch.Tensor, e: int) -> torch.Tensor:
    """``x * 2^e`` (exact), in two steps so that ``2^e`` itself never overflows a float."""
    if e == 0:
        return x
    half = e // 2
    return x * 2.0 ** (e - half) * 2.0**half


def unscale(value: torch.Tensor, e: int, weight: torch.Tensor, what: str, name: str = "weight") -> torch.Tensor:
    """``value * 2^e``: a result of the scaled kernel brought back; ValueError when it no longer fits in the
    weight's dtype (``what`` names the result in the message). ``e == 0``: ``value`` as it is, no check."""
    if e == 0:
        return value
    value = scale_by_power_of_two(value, e)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(
            f"{what} of {name} exceeds the largest {str(weight.dtype).removeprefix('torch.')} "
            f"({torch.finfo(weight.dtype).max:.3g}; largest entry {float(weight.detach().abs().max()):.3g}): "
            "convert the weight to float64, or scale it down"
        )
    return value
