"""Exact clipping of the singular values of a (strided) periodic convolution (Sedghi et al. 2019).

One pass: FFT of the polyphase components, ``P' = P V diag(min(1, c/sigma)) V^H`` per frequency
(or ``U diag(...) U^H P`` when the output side is smaller), inverse FFT, reassemble, restrict to the
kernel's k-support. The restriction changes the spectrum again; repeated passes are alternating
projections onto two convex sets and move the true norm toward the target. This module is the one
home of that pass; ``clip_target`` searches over its clip level.
"""

from __future__ import annotations

import math

from typing import Sequence

import torch

from svconv.spectrum._checks import check_count, check_geometry, check_positive
from svconv.spectrum.exact import transfer_matrices, unpolyphase
from svconv.spectrum.scaling import power_of_two_scale, scale_by_power_of_two


class GramEig:
    """Eigendecomposition of the smaller Gram matrix of a batch of complex matrices ``P`` ``(F, a, b)``.

    ``sigma`` ``(F, min(a, b))``: the singular values, ascending. :meth:`clip` returns
    ``U min(Sigma, t) V^H`` for any level ``t`` with one batched matmul, so one decomposition serves
    every level a search tries.
    """

    def __init__(self, P: torch.Tensor):
        a, b = P.shape[-2:]
        self.right = a > b  # eigenvectors of P^H P (b x b) when the input side is the smaller one
        G = P.mH @ P if self.right else P @ P.mH
        lam, self.vec = torch.linalg.eigh(G)
        self.sigma = lam.clamp_min(0).sqrt()
        # P V (right) or U^H P (left): the per-level clip is then one product with the scaled eigenvectors
        self._proj = P @ self.vec if self.right else self.vec.mH @ P

    def clip(self, level: float) -> torch.Tensor:
        """``U min(Sigma, level) V^H`` per matrix, ``(F, a, b)``."""
        tiny = torch.finfo(self.sigma.dtype).tiny
        scale = (level / self.sigma.clamp_min(tiny)).clamp_max(1).to(self.vec.dtype).unsqueeze(-2)
        if self.right:
            return (self._proj * scale) @ self.vec.mH
        return (self.vec * scale) @ self._proj


def clip_transfer_matrices(P: torch.Tensor, max_sv: float) -> torch.Tensor:
    """``U min(Sigma, max_sv) V^H`` for a batch of complex matrices ``(..., a, b)``, via the smaller Gram."""
    return GramEig(P).clip(max_sv)


def restrict_transfer(
    P: torch.Tensor, kernel_shape: Sequence[int], m: Sequence[int], stride: Sequence[int]
) -> torch.Tensor:
    """Kernel ``kernel_shape`` = ``(c_out, c_in, k...)`` from half-spectrum transfer matrices ``P`` ``(F, c_out, cols)``.

    Inverse real FFT on the m-grid (real part of the Hermitian extension), reassembly of the polyphase
    components, restriction to the k-support: the inverse of ``transfer_matrices`` on kernels of that
    support, and the orthogonal projection (in the Frobenius norm of the kernel) onto them otherwise.
    """
    c_out, c_in, *k = kernel_shape
    d = len(k)
    freq_shape = (*m[:-1], m[-1] // 2 + 1)
    spec = P.permute(1, 2, 0).reshape(c_out, P.shape[-1], *freq_shape)
    comps = torch.fft.irfftn(spec, s=tuple(m), dim=tuple(range(2, 2 + d)))
    crop = (slice(None), slice(None), *[slice(0, kj) for kj in k])
    return unpolyphase(comps, c_in, stride)[crop]


def clip_conv_singular_values(
    weight: torch.Tensor,
    input_size: int | Sequence[int],
    max_sv: float,
    stride: int | Sequence[int] = 1,
    n_iter: int = 1,
) -> torch.Tensor:
    """Clip every singular value of the periodic convolution to at most ``max_sv``, keeping the kernel size.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``, d in {2, 3}.
        input_size: ``(n_1, ..., n_d)`` or an int; ``k_j <= n_j``.
        max_sv: the target, > 0.
        stride: int or d-tuple dividing ``input_size``.
        n_iter: clip-then-restrict passes (>= 1). A kernel whose support is the whole input is exact
            after one; otherwise report the true norm after clipping (``conv_spectral_norm``), or use
            ``clip_to_target``, which stops at a tolerance around the target.

    Returns:
        The clipped kernel: same shape, dtype and device as ``weight``.
    """
    d, n, s, m = check_geometry(weight, input_size, stride)
    max_sv = check_positive(max_sv, "max_sv")
    check_count(n_iter, "n_iter")
    e = power_of_two_scale(weight)  # clip(2^e W, 2^e c) = 2^e clip(W, c): huge entries would overflow eigh
    w = scale_by_power_of_two(weight.detach(), -e)
    level = math.ldexp(max_sv, -e)
    for _ in range(n_iter):
        P, _ = transfer_matrices(w, n, s)
        w = restrict_transfer(clip_transfer_matrices(P, level), w.shape, m, s)
    return scale_by_power_of_two(w, e).to(weight.dtype).contiguous()
