"""Exact clipping of the singular values of a (strided) periodic convolution (Sedghi et al. 2019).

One pass: FFT of the polyphase components, ``P' = P V diag(min(1, c/sigma)) V^H`` per frequency
(or ``U diag(...) U^H P`` when the output side is smaller), inverse FFT, reassemble, restrict to the
kernel's k-support. The restriction changes the spectrum again; repeated passes are alternating
projections onto two convex sets and move the true norm toward the target.
"""

from __future__ import annotations

from typing import Sequence

import torch

from svconv.spectrum._checks import check_count, check_geometry, check_positive
from svconv.spectrum.exact import polyphase, unpolyphase


def clip_transfer_matrices(P: torch.Tensor, max_sv: float) -> torch.Tensor:
    """``U min(Sigma, max_sv) V^H`` for a batch of complex matrices ``(..., a, b)``, via the smaller Gram."""
    a, b = P.shape[-2:]
    right = a > b  # eigenvectors of P^H P (b x b) when the input side is the smaller one
    G = P.mH @ P if right else P @ P.mH
    lam, vec = torch.linalg.eigh(G)
    sigma = lam.clamp_min(0).sqrt()
    scale = torch.where(sigma > max_sv, max_sv / sigma.clamp_min(torch.finfo(sigma.dtype).tiny), torch.ones_like(sigma))
    proj = (vec * scale.unsqueeze(-2).to(vec.dtype)) @ vec.mH
    return P @ proj if right else proj @ P


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
            after one; otherwise report the true norm after clipping (``conv_spectral_norm``).

    Returns:
        The clipped kernel: same shape, dtype and device as ``weight``.
    """
    d, n, s, m = check_geometry(weight, input_size, stride)
    max_sv = check_positive(max_sv, "max_sv")
    check_count(n_iter, "n_iter")
    c_out, c_in, *k = weight.shape
    dims = tuple(range(2, 2 + d))
    crop = (slice(None), slice(None), *[slice(0, kj) for kj in k])
    w = weight.detach()
    for _ in range(n_iter):
        spec = torch.fft.rfftn(polyphase(w, n, s), s=m, dim=dims)
        freq_shape = spec.shape[2:]
        P = spec.reshape(c_out, spec.shape[1], -1).permute(2, 0, 1)
        P = clip_transfer_matrices(P, max_sv)
        spec = P.permute(1, 2, 0).reshape(c_out, -1, *freq_shape)
        comps = torch.fft.irfftn(spec, s=m, dim=dims)
        w = unpolyphase(comps, c_in, s)[crop]
    return w.to(weight.dtype).contiguous()
