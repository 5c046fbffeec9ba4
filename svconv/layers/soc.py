"""Skew orthogonal convolution (SOC, Singla & Feizi 2021) and its TT version SOC-TT (seed 000, Sec. 5.1).

SOC: ``y = sum_{t=0..T} L^t x / t! + b`` with ``L`` the convolution by the skew kernel
``K = W - flip(W)^T`` (``K[o, i, p] = W[o, i, p] - W[i, o, k-1-p]``). With stride 1, an odd kernel and
"same" zero or circular padding, the conv by ``flip(W)^T`` is exactly the adjoint of the conv by ``W``,
so ``L^T = -L`` and ``exp(L)`` is orthogonal. ``K`` is scaled so that a certified bound on ``||L||``
equals ``max_norm``: ``||L|| <= sqrt(k^2) · ||K as (c, c k^2)||_2`` (each output pixel is that matrix
applied to the k^2 shifted copies of the input, and the shifts have norm <= 1). The truncated series
then differs from ``exp(L)`` by at most ``sum_{t>T} ||L||^t / t!``, which :meth:`SOC.lipschitz_bound` adds.
T is ``train_terms`` in training mode and ``eval_terms`` in eval mode.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from svconv.layers.conv_bound import conv_operator_bound
from svconv.tt.frames import TTFrames, check_channels, parse_ranks

SOC_PADDING_MODES = ("zeros", "circular")


def taylor_tail(b: float, terms: int) -> float:
    """``sum_{t > terms} b^t / t!`` for ``b >= 0``: terms summed until they fall below 1e-17 of the total,
    then the rest bounded by a geometric series (ratio ``b / (t + 1) < 1/2`` there), so an upper bound."""
    if b < 0:
        raise ValueError(f"b must be non-negative; got {b}")
    if b == 0:
        return 0.0
    t = terms + 1
    term = math.exp(t * math.log(b) - math.lgamma(t + 1))
    total = 0.0
    while True:
        total += term
        ratio = b / (t + 1)
        term *= ratio
        t += 1
        if ratio < 0.5 and term <= 1e-17 * total:
            return total + term / (1 - ratio)


def skew_bound(kernel: torch.Tensor) -> torch.Tensor:
    """``sqrt(k1 k2) · ||kernel as (c_out, c_in k1 k2)||_2``: a certified bound on the conv's norm, any input size (differentiable)."""
    k = kernel.shape[2] * kernel.shape[3]
    return math.sqrt(k) * torch.linalg.matrix_norm(kernel.flatten(1), ord=2)


def _check_terms(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return value


class SOC(nn.Module):
    """Skew orthogonal convolution on ``channels`` channels: orthogonal up to the Taylor truncation.

    Args:
        channels: input and output channels.
        kernel_size: odd int (the adjoint identity needs symmetric "same" padding).
        train_terms, eval_terms: Taylor terms T in training and in eval mode (defaults 5 and 12).
        bias: add a learnt bias (does not change the Lipschitz constant).
        padding_mode: ``'zeros'`` or ``'circular'``.
        max_norm: the certified bound on ``||L||`` the kernel is scaled to (> 0); smaller converges faster.

    Input ``(batch, channels, h, w)``, output the same shape.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        train_terms: int = 5,
        eval_terms: int = 12,
        bias: bool = True,
        padding_mode: str = "zeros",
        max_norm: float = 1.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_channels(channels, "channels")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive int; got {kernel_size!r}")
        if padding_mode not in SOC_PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {SOC_PADDING_MODES}; got {padding_mode!r}")
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm > 0:
            raise ValueError(f"max_norm must be a positive number; got {max_norm!r}")
        self.channels, self.kernel_size = channels, kernel_size
        self.train_terms = _check_terms(train_terms, "train_terms")
        self.eval_terms = _check_terms(eval_terms, "eval_terms")
        self.padding_mode, self.max_norm = padding_mode, float(max_norm)
        self.weight = nn.Parameter(torch.randn(channels, channels, kernel_size, kernel_size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype)) if bias else None

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, train_terms={self.train_terms}, "
            f"eval_terms={self.eval_terms}, padding_mode={self.padding_mode!r}, max_norm={self.max_norm}"
        )

    @property
    def terms(self) -> int:
        """The number of Taylor terms the forward pass uses now."""
        return self.train_terms if self.training else self.eval_terms

    def skew_kernel(self) -> torch.Tensor:
        """The kernel of ``L``: ``(W - flip(W)^T)`` scaled so that :func:`skew_bound` equals ``max_norm`` (differentiable)."""
        w = self.weight
        k = w - w.transpose(0, 1).flip(2, 3)
        return k * (self.max_norm / skew_bound(k).clamp_min(torch.finfo(k.dtype).tiny))

    def _conv(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        if self.padding_mode == "circular" and p:
            return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), kernel)
        return F.conv2d(x, kernel, padding=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SOC expects input (batch, {self.channels}, h, w); got {tuple(x.shape)}")
        kernel = self.skew_kernel()
        y = z = x
        for t in range(1, self.terms + 1):
            z = self._conv(z, kernel) / t
            y = y + z
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    @torch.no_grad()
    def skew_norm_bound(self, input_shape: Sequence[int]) -> float:
        """Certified bound on ``||L||`` for inputs ``(channels, h, w)``: the smaller of :func:`skew_bound` and the
        conv bound of ``svconv.layers.conv_bound`` (exact for circular padding), both in float64."""
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[0] != self.channels:
            raise ValueError(f"input_shape must be ({self.channels}, h, w); got {shape}")
        kernel = self.skew_kernel().double()
        p = self.kernel_size // 2
        return min(float(skew_bound(kernel)), conv_operator_bound(kernel, shape[1:], 1, p, 1, self.padding_mode))

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """``1 + sum_{t > T} b^t / t!`` with ``b`` a certified bound on ``||L||`` and T the current :attr:`terms`.

        The truncated series is ``exp(L) - R_T`` with ``exp(L)`` orthogonal and ``||R_T|| <= sum_{t>T} ||L||^t/t!``.
        """
        return 1.0 + taylor_tail(self.skew_norm_bound(input_shape), self.terms)


class SOCTT(nn.Module, TTFrames):
    """SOC-TT: 1x1 conv ``U`` (channels -> rank), a :class:`SOC` core on ``rank`` channels, 1x1 conv ``V``
    (rank -> channels, the bias). Orthonormal frames make the nonzero singular values those of the SOC core
    (all 1 up to the truncation); training keeps them near orthonormal through ``svconv.tt.orthogonality_loss``.

    Args:
        channels: input and output channels.
        rank: the core's channels, clamped to ``channels``.
        kernel_size, train_terms, eval_terms, padding_mode, max_norm: as :class:`SOC`.
        bias: bias of ``V``.
    """

    def __init__(
        self,
        channels: int,
        rank: int,
        kernel_size: int = 3,
        train_terms: int = 5,
        eval_terms: int = 12,
        bias: bool = True,
        padding_mode: str = "zeros",
        max_norm: float = 1.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_channels(channels, "channels")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise ValueError(f"rank must be a positive int; got {rank!r}")
        r, _ = parse_ranks(rank, channels, channels)
        kw = dict(device=device, dtype=dtype)
        self.channels = channels
        self.U = nn.Conv2d(channels, r, 1, bias=False, **kw)
        self.core = SOC(r, kernel_size, train_terms, eval_terms, bias=False, padding_mode=padding_mode, max_norm=max_norm, **kw)
        self.V = nn.Conv2d(r, channels, 1, bias=bias, **kw)
        with torch.no_grad():  # V = U^T: at init the layer is the core on the subspace spanned by U's rows
            nn.init.orthogonal_(self.U.weight.view(r, channels))
            self.V.weight.copy_(self.U.weight.view(r, channels).T.reshape(self.V.weight.shape))
            if self.V.bias is not None:
                self.V.bias.zero_()

    @property
    def rank(self) -> int:
        return self.core.channels

    def extra_repr(self) -> str:
        return f"{self.channels}, rank={self.rank}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.V(self.core(self.U(x)))

    def dense_params(self) -> int:
        """Weights of the full SOC on ``channels`` this layer stands for."""
        return self.channels * self.channels * self.core.kernel_size**2

    @torch.no_grad()
    def project_frames_(self) -> "SOCTT":
        """Replace ``U`` and ``V`` by their nearest matrices with orthonormal rows / columns (polar factors).

        Unlike ``TTConv2d.orthogonalize_`` this changes the function (an R factor cannot be folded into a
        skew-symmetric core). Returns ``self``.
        """
        for frame, transpose in ((self.U, False), (self.V, True)):
            m = frame.weight.flatten(1)
            m = m.T if transpose else m
            a, _, bh = torch.linalg.svd(m.to(torch.float64), full_matrices=False)
            polar = a @ bh
            frame.weight.copy_((polar.T if transpose else polar).reshape(frame.weight.shape))
        return self

    def lipschitz_bound(self, input_shape: Sequence[int]) -> float:
        """``||V||_2 · SOC bound · ||U||_2`` for inputs ``(channels, h, w)`` (the SOC bound alone for orthonormal frames)."""
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[0] != self.channels:
            raise ValueError(f"input_shape must be ({self.channels}, h, w); got {shape}")
        nu, nv = self.frame_norms()
        return nv * self.core.lipschitz_bound((self.rank, *shape[1:])) * nu
