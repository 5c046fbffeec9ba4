"""Gram iteration upper bound on the spectral norm of a periodic convolution (Delattre et al. 2023)."""

from __future__ import annotations

from typing import Sequence

import torch

from svconv.spectrum._checks import check_count
from svconv.spectrum.exact import transfer_matrices
from svconv.spectrum.scaling import power_of_two_scale, scale_by_power_of_two, unscale


def gram_iteration_bound(
    weight: torch.Tensor,
    input_size: int | Sequence[int],
    n_iter: int = 6,
    stride: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Upper bound on the largest singular value of the periodic convolution (0-d tensor).

    ``G_0 = P(w)``, ``G_{t+1} = G_t^H G_t``; ``sigma_max <= max_w ||G_T(w)||_F^(2^-T)`` for every T,
    which equals the l_(2^(T+1)) norm of the singular values at the worst frequency. Each step is
    rescaled by its Frobenius norm and the scale kept in log space, and a kernel with huge entries is
    scaled by a power of two first, so nothing overflows; ValueError if the bound itself exceeds the dtype's range.

    Args:
        weight: ``(c_out, c_in, k_1, ..., k_d)``.
        input_size: ``(n_1, ..., n_d)`` or an int.
        n_iter: T >= 0; 6 is within 0.1 % for kernels whose top singular value is not repeated.
        stride: int or d-tuple dividing ``input_size`` (the bound then holds for the strided operator).
    """
    check_count(n_iter, "n_iter", minimum=0)
    e = power_of_two_scale(weight)  # huge entries: the first norm (and P itself) would overflow
    G, _ = transfer_matrices(scale_by_power_of_two(weight, -e), input_size, stride)
    return unscale(gram_bound_matrices(G, n_iter).max(), e, weight, "the Gram-iteration bound")


def gram_bound_matrices(G: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Per-matrix Gram-iteration upper bound on the largest singular value of a batch ``(F, a, b)``: ``(F,)`` real.

    Matmuls only. The bound is the l_(2^(T+1)) norm of each matrix's singular values, so it exceeds the
    largest by at most the factor ``min(a, b)^(2^-(T+1))`` (all singular values equal), and by much less
    when the top one stands out.
    """
    real = G.real.dtype
    log_scale = torch.zeros(G.shape[0], dtype=real, device=G.device)
    for _ in range(n_iter):
        norm = torch.linalg.matrix_norm(G).clamp_min(torch.finfo(real).tiny)
        G = G / norm[:, None, None].to(G.dtype)
        log_scale = 2 * (log_scale + norm.log())
        G = G.mH @ G if G.shape[-2] >= G.shape[-1] else G @ G.mH
    log_bound = (log_scale + torch.linalg.matrix_norm(G).clamp_min(torch.finfo(real).tiny).log()) / 2**n_iter
    return log_bound.exp()
