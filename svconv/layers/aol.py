"""Almost-orthogonal Lipschitz (AOL) layers (Prach & Lampert 2022): 1-Lipschitz by a diagonal rescaling.

Dense: ``W' = W diag(d)``, ``d_j = (sum_i |W^T W|_{ji})^(-1/2)``; then ``||W'||_2 <= 1`` (Schur test on
``D W^T W D``). Conv: ``W^T W`` becomes the full self-correlation of the kernel over space,
``R[j, i, q] = sum_o sum_p K[o, j, p] K[o, i, p + q]`` (``c_in x c_in x (2k-1)^2``), which is the Gram of
the convolution on the infinite grid; summing ``|R|`` over ``i`` and ``q`` bounds every row of the Gram.
Zero padding is that operator between an isometric embedding and a restriction, circular padding
folds it onto the torus (``|a + b| <= |a| + |b|``), a stride only drops outputs: all stay 1-Lipschitz.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.spectrum._checks import as_tuple

EPS = 1e-12  # keeps zero columns finite; a larger denominator only lowers the norm
AOL_PADDING_MODES = ("zeros", "circular")


def aol_linear_scale(weight: torch.Tensor) -> torch.Tensor:
    """``d`` of shape ``(in_features,)`` for ``weight`` ``(out_features, in_features)`` (differentiable)."""
    gram = weight.T @ weight
    return (gram.abs().sum(dim=1) + EPS).rsqrt()


def aol_conv_scale(weight: torch.Tensor) -> torch.Tensor:
    """``d`` of shape ``(c_in,)`` for a 2-D kernel ``(c_out, c_in, k1, k2)`` from its self-correlation (differentiable)."""
    k = weight.shape[2:]
    kt = weight.transpose(0, 1)  # (c_in, c_out, k1, k2): c_in "images" with c_out channels
    corr = F.conv2d(kt, kt, padding=(k[0] - 1, k[1] - 1))  # (c_in, c_in, 2k1-1, 2k2-1)
    return (corr.abs().sum(dim=(1, 2, 3)) + EPS).rsqrt()


class AOLLinear(nn.Module):
    """1-Lipschitz linear layer ``x -> x (W diag(d))^T + b``; ``W`` initialised orthogonal. Input ``(batch, in_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        for key, val in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{key} must be a positive int; got {val!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None
        nn.init.orthogonal_(self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def rescaled_weight(self) -> torch.Tensor:
        """``W diag(d)``: the matrix actually applied, spectral norm <= 1."""
        return self.weight * aol_linear_scale(self.weight).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.rescaled_weight(), self.bias)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (guaranteed by the rescaling). ``input_shape``: ``(in_features,)``."""
        if tuple(int(v) for v in input_shape) != (self.in_features,):
            raise ValueError(f"input_shape must be ({self.in_features},); got {tuple(input_shape)}")
        return 1.0


class AOLConv2d(nn.Module):
    """1-Lipschitz 2-D convolution with the AOL rescaling of its input channels.

    Args:
        in_channels, out_channels, kernel_size, stride: as ``nn.Conv2d``.
        padding: per side; default ``k // 2`` ("same" for odd kernels).
        padding_mode: ``'zeros'`` or ``'circular'`` (the copy maps of reflect/replicate padding are not contractions).
        bias: add a learnt bias.

    The kernel starts as the identity (``dirac_``), which AOL leaves unchanged. Input ``(batch, c_in, h, w)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | None = None,
        padding_mode: str = "zeros",
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        for key, val in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{key} must be a positive int; got {val!r}")
        if padding_mode not in AOL_PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {AOL_PADDING_MODES}; got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size")
        self.stride = as_tuple(stride, 2, "stride")
        if padding is None:
            padding = tuple(k // 2 for k in self.kernel_size)
        if isinstance(padding, int):
            padding = (padding, padding)
        self.padding = tuple(int(p) for p in padding)
        if len(self.padding) != 2 or any(p < 0 for p in self.padding):
            raise ValueError(f"padding must be a non-negative int or a pair of them; got {padding!r}")
        if padding_mode == "circular" and any(2 * p > k - 1 for p, k in zip(self.padding, self.kernel_size)):
            # More outputs than the torus holds would repeat some of them: no longer 1-Lipschitz.
            raise ValueError(f"padding must be at most (kernel_size - 1) // 2 with circular padding; got {padding!r}")
        self.padding_mode = padding_mode
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(out_channels, device=device, dtype=dtype)) if bias else None
        with torch.no_grad():
            nn.init.dirac_(self.weight)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, padding_mode={self.padding_mode!r}"
        )

    def rescaled_weight(self) -> torch.Tensor:
        """The kernel actually applied, ``K[:, j] · d_j``; its conv has spectral norm <= 1."""
        return self.weight * aol_conv_scale(self.weight).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.rescaled_weight()
        if self.padding_mode == "circular" and any(self.padding):
            ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph), mode="circular")
            return F.conv2d(x, w, self.bias, stride=self.stride)
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """1 (guaranteed by the rescaling, any input size). ``input_shape``: ``(c_in, h, w)``."""
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"input_shape must be ({self.in_channels}, h, w); got {shape}")
        return 1.0
