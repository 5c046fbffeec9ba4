"""Spectral-norm routines that ``svconv bench`` measures beside the methods: exact, power, PowerQR.

Registered as :class:`~svconv.methods.registry.Estimator` entries (no training method of these names).
"""

from __future__ import annotations

from typing import Sequence

import torch

import svconv.methods.flops as F
from svconv.methods.base import grid_and_stride
from svconv.methods.registry import Estimator, register


def _tt(module) -> bool:
    return hasattr(module, "core")


class Exact(Estimator):
    """``conv_singular_values`` of the periodic operator on the layer's grid (TT: the orthogonalised core)."""

    name = "exact"
    order = 1
    summary = "exact singular values of the periodic operator (Sedghi et al. 2019; strided: Senderovich et al. 2022)"
    bench_layer = "exact"
    bench_model = "exact"
    flops_on_grid = True
    orthogonalises = True

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.exact_flops(c_out, c_in, size, stride)

    @classmethod
    def bench_skip(cls, padding: str, tt: bool, ndim: int) -> str | None:
        return periodic_only(cls.name, padding)

    @classmethod
    def layer_value(cls, module, input_shape: Sequence[int], iters, k, generator) -> torch.Tensor:
        from svconv.spectrum import conv_singular_values

        if _tt(module):
            module.orthogonalize_()
            return module.singular_values(grid_and_stride(module.core, input_shape[1:])[0])
        return conv_singular_values(module.weight.detach(), *grid_and_stride(module, input_shape[1:]))


def periodic_only(name: str, padding: str) -> str | None:
    """The skip reason of an exact routine on a padding mode without a periodic model."""
    if padding not in ("circular", "zeros"):
        return f"method {name} needs circular or zeros padding (a periodic model); got {padding}"
    return None


class Power(Estimator):
    """Power iteration on ``M^T M`` of the layer itself (a lower bound up to rounding)."""

    name = "power"
    order = 80
    summary = "power iteration (a lower estimate)"
    default_iters = 10
    bench_layer = "estimate"

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.power_flops(c_out, c_in, kernel, size, stride, iters)

    @classmethod
    def layer_value(cls, module, input_shape: Sequence[int], iters, k, generator) -> torch.Tensor:
        from svconv.spectrum import power_iteration

        return power_iteration(module, input_shape, n_iter=iters, generator=generator)[0]


class PowerQR(Estimator):
    """Block power iteration with QR, top ``k`` singular values (Boroojeny et al. 2024)."""

    name = "powerqr"
    order = 81
    summary = "PowerQR, the top-k singular values"
    default_iters = 10
    takes_k = True
    bench_layer = "estimate"

    @staticmethod
    def flops(c_out, c_in, kernel, size, stride, iters, k):
        return F.power_flops(c_out, c_in, kernel, size, stride, iters, k or 1)

    @classmethod
    def layer_value(cls, module, input_shape: Sequence[int], iters, k, generator) -> torch.Tensor:
        from svconv.spectrum import power_qr

        return power_qr(module, input_shape, k=k, n_iter=iters, generator=generator)

register(Exact)
register(Power)
register(PowerQR)
