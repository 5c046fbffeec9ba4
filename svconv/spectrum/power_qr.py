"""PowerQR: the top-k singular triples of the linear part of any module (Boroojeny et al. 2024, Alg. 1, Prop. 2.1).

For ``f(x) = M x + b`` the input gradient of ``L(X) = 0.5 sum_j ||f(X_j) - f(0)||^2`` is ``M^T M X``; the
paper's step ``X <- QR(mu X + grad L)`` is therefore the shifted subspace iteration on ``M^T M + mu I``
(its Proposition 2.1), whatever the module's padding, stride, dilation or groups, and for conv followed
by batch norm in eval mode. The paper's code uses ``mu = 1`` and reads ``sigma_i = sqrt(|R_ii - mu|)``
off the QR factor; here a final Rayleigh-Ritz step (the SVD of ``M Q``, one more forward) gives the
values and both singular vectors. A shift ``mu >= 0`` keeps ``M^T M + mu I`` positive definite (the top-k
subspace stays the dominant one); it slows convergence, the ratio being ``(s_(k+1)^2 + mu) / (s_k^2 + mu)``
instead of ``(s_(k+1) / s_k)^2``, so the default is 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from svconv.spectrum._checks import check_count
from svconv.spectrum.linear_map import LinearPart, Module


class SingularTriples(NamedTuple):
    """PowerQR's estimates, best first: ``values`` ``(k,)`` (each at most the true ``sigma_i``: Rayleigh-Ritz
    values interlace), unit right vectors ``right`` ``(k, *input_shape)`` and left ``left`` ``(k, *output_shape)``,
    with ``M right[i] = values[i] left[i]`` once converged."""

    values: torch.Tensor
    right: torch.Tensor
    left: torch.Tensor


def check_shift(shift: float) -> float:
    """The PowerQR shift ``mu``: a finite number >= 0 (ValueError otherwise)."""
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift < 0:
        raise ValueError(f"shift must be a finite number >= 0; got {shift!r}")
    return float(shift)


def power_qr_triples(
    module: Module,
    input_shape: Sequence[int],
    k: int = 1,
    n_iter: int = 100,
    V: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    shift: float = 0.0,
) -> SingularTriples:
    """Top-``k`` singular triples of ``x -> module(x) - module(0)`` by ``n_iter`` PowerQR steps.

    Args:
        module: linear-plus-constant callable on ``(batch, *input_shape)`` (batch norm in eval mode).
        input_shape: one input without the batch dimension, e.g. ``(c_in, h, w)``.
        k: number of singular triples, at least 1, at most the input and the output dimension.
        n_iter: PowerQR steps (>= 1); the k columns go through the module as one batch per step.
        V: warm start ``(k, *input_shape)`` (``right`` of the previous call); None: Gaussian from ``generator``.
        shift: ``mu`` of the iteration on ``M^T M + mu I`` (>= 0; the paper's code uses 1).

    Returns:
        :class:`SingularTriples`, values descending, on the module's device and dtype.
    """
    check_count(n_iter, "n_iter")
    check_count(k, "k")
    shift = check_shift(shift)
    M = LinearPart(module, input_shape)
    n = M.in_features
    if k > min(n, M.out_features):
        raise ValueError(f"k must be at most the input dimension {n} and the output dimension {M.out_features}; got {k}")
    if V is None:
        X = torch.randn(k, n, generator=generator, dtype=M.dtype).to(M.device)
    else:
        if tuple(V.shape) != (k, *M.input_shape):
            raise ValueError(f"V must have shape (k, *input_shape) = {(k, *M.input_shape)}; got {tuple(V.shape)}")
        X = V.detach().to(M.device, M.dtype).reshape(k, n)
    Q, _ = torch.linalg.qr(X.T)  # (n, k), orthonormal columns
    for _ in range(n_iter):
        _, G = M.gram(Q.T.reshape(k, *M.input_shape))  # rows M^T M q_j
        Z = G.reshape(k, n).T
        if shift:
            Z = Z + shift * Q
        Q, _ = torch.linalg.qr(Z)
    # Rayleigh-Ritz: M Q = U S W^T, so M (Q W) = U S; the values interlace with the true ones
    Y = M.apply(Q.T.reshape(k, *M.input_shape))
    U, S, Wh = torch.linalg.svd(Y.reshape(k, -1).T, full_matrices=False)
    right = (Q @ Wh.T).T.reshape(k, *M.input_shape)
    left = U.T.reshape(k, *Y.shape[1:])
    return SingularTriples(S, right.detach(), left.detach())


def power_qr(
    module: Module,
    input_shape: Sequence[int],
    k: int = 1,
    n_iter: int = 100,
    generator: torch.Generator | None = None,
    shift: float = 0.0,
) -> torch.Tensor:
    """Top-``k`` singular values ``(k,)``, descending, of the linear part of ``module`` (see :func:`power_qr_triples`)."""
    return power_qr_triples(module, input_shape, k=k, n_iter=n_iter, generator=generator, shift=shift).values


__all__ = ["SingularTriples", "check_shift", "power_qr", "power_qr_triples"]
