"""Exact singular values of periodic (circular) convolutions, any stride dividing the input.

Sedghi et al. 2019 for stride 1; Senderovich et al. 2022, Theorem 2, for stride s: the operator is
block-diagonalised by the FFT of the kernel's polyphase components on the m = n/s grid. Only the
half-spectrum of the real FFT is computed (P(-w) = conj P(w)), and only the eigenvalues of the
smaller Gram matrix of each transfer matrix.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from svconv.spectrum._checks import check_geometry
from svconv.spectrum.scaling import power_of_two_scale, scale_by_power_of_two, unscale


def polyphase(weight: torch.Tensor, input_size: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """Zero-pad ``weight`` to ``input_size`` and split it into its ``prod(stride)`` polyphase components.

    ``(c_out, c_in, k_1..k_d) -> (c_out, c_in * prod(s), m_1..m_d)``; component ``f`` holds
    ``W_pad[..., f_1::s_1, ..., f_d::s_d]``. A reshape, not a loop: index ``p = s*a + f``.
    """
    c_out, c_in, *k = weight.shape
    d = len(k)
    pad: list[int] = []
    for kj, nj in zip(reversed(k), reversed(list(input_size))):
        pad += [0, nj - kj]
    w = F.pad(weight, pad) if any(pad) else weight
    m = [nj // sj for nj, sj in zip(input_size, stride)]
    split = [c_out, c_in]
    for mj, sj in zip(m, stride):
        split += [mj, sj]
    w = w.reshape(split)
    # (c_out, c_in, m1, s1, m2, s2, ...) -> (c_out, c_in, s1, s2, ..., m1, m2, ...)
    perm = [0, 1] + [3 + 2 * j for j in range(d)] + [2 + 2 * j for j in range(d)]
    return w.permute(perm).reshape(c_out, -1, *m)


def unpolyphase(components: torch.Tensor, c_in: int, stride: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`polyphase` before cropping: ``(c_out, c_in*prod(s), m...) -> (c_out, c_in, n...)``."""
    c_out, _, *m = components.shape
    d = len(m)
    w = components.reshape(c_out, c_in, *stride, *m)
    # (c_out, c_in, s1.., m1..) -> (c_out, c_in, m1, s1, m2, s2, ...)
    perm = [0, 1]
    for j in range(d):
        perm += [2 + d + j, 2 + j]
    return w.permute(perm).reshape(c_out, c_in, *[mj * sj for mj, sj in zip(m, stride)])


def transfer_matrices(
    weight: torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int] = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The transfer matrices ``P_s(w)`` on the half-spectrum of the m-grid, and their multiplicities.

    Returns ``(P, mult)``: ``P`` complex of shape ``(F, c_out, c_in * prod(s))`` with F the number of
    half-spectrum frequencies, ``mult`` of shape ``(F,)`` holding 1 for self-conjugate planes of the
    last axis and 2 for the others, so that ``mult.sum() == prod(m)``.
    """
    d, n, s, m = check_geometry(weight, input_size, stride)
    comps = polyphase(weight, n, s)
    spec = torch.fft.rfftn(comps, s=m, dim=tuple(range(2, 2 + d)))
    c_out, cols = spec.shape[:2]
    P = spec.reshape(c_out, cols, -1).permute(2, 0, 1)
    half = m[-1] // 2 + 1
    last = torch.full((half,), 2, dtype=torch.int64, device=weight.device)
    last[0] = 1
    if m[-1] % 2 == 0:
        last[-1] = 1
    mult = last.repeat(P.shape[0] // half)
    return P, mult


def gram_singular_values(P: torch.Tensor) -> torch.Tensor:
    """Singular values of a batch of matrices ``(..., a, b)`` via the smaller Gram matrix, ascending.

    Shape ``(..., min(a, b))``, real. Accuracy: absolute error about ``sqrt(eps) * sigma_max`` on values
    near zero (the Gram matrix squares the condition number); relative to ``sigma_max`` otherwise.
    """
    a, b = P.shape[-2:]
    H = P.mH
    G = P @ H if a <= b else H @ P
    return torch.linalg.eigvalsh(G).clamp_min_(0).sqrt_()


def conv_singular_values(
    weight: torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int] = 1
) -> torch.Tensor:
    """All singular values of the periodic convolution with kernel ``weight``, descending.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``, d in {2, 3}, float32 or float64, any device.
        input_size: spatial size ``(n_1, ..., n_d)`` or an int for all dimensions; ``k_j <= n_j``.
        stride: int or d-tuple dividing ``input_size``.

    Returns:
        ``(prod(m) * min(c_out, c_in * prod(s)),)`` real tensor, ``m = n / s``, on ``weight``'s device.
        A kernel with huge (or tiny) entries is scaled by a power of two first (:mod:`svconv.spectrum.scaling`);
        ValueError if the singular values themselves exceed the dtype's range.
    """
    e = power_of_two_scale(weight)
    P, mult = transfer_matrices(scale_by_power_of_two(weight, -e), input_size, stride)
    sv = gram_singular_values(P)
    sv = torch.repeat_interleave(sv, mult, dim=0).flatten()
    sv = torch.sort(sv, descending=True).values
    return unscale(sv, e, weight, "a singular value")


def conv_spectral_norm(
    weight: torch.Tensor, input_size: int | Sequence[int], stride: int | Sequence[int] = 1
) -> torch.Tensor:
    """Largest singular value of the periodic convolution (a 0-d tensor). Arguments as :func:`conv_singular_values`."""
    e = power_of_two_scale(weight)
    P, _ = transfer_matrices(scale_by_power_of_two(weight, -e), input_size, stride)
    top = gram_singular_values(P)[..., -1].max()
    return unscale(top, e, weight, "the spectral norm")


def periodic_conv(x: torch.Tensor, weight: torch.Tensor, stride: int | Sequence[int] = 1) -> torch.Tensor:
    """The operator A of docs/design.md: ``(A x)[o, q] = sum_i sum_p W[o, i, p] x[i, (s q + p) mod n]``.

    ``x``: ``(batch, c_in, n_1..n_d)`` -> ``(batch, c_out, n_1/s_1, ...)``. Circular wrap to the right,
    so the kernel's offset is 0; this is the operator whose spectrum :func:`conv_singular_values` returns.
    """
    d = weight.dim() - 2
    pad: list[int] = []
    for kj in reversed(weight.shape[2:]):
        pad += [0, kj - 1]
    xp = F.pad(x, pad, mode="circular") if any(pad) else x
    conv = F.conv2d if d == 2 else F.conv3d
    return conv(xp, weight, stride=stride)
