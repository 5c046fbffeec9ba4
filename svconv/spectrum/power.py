"""Power iteration on the linear part of any module (Gouk et al. 2021); its block form, PowerQR, is ``power_qr.py``."""

from __future__ import annotations

from typing import Sequence

import torch

from svconv.spectrum._checks import check_count
from svconv.spectrum.linear_map import LinearPart, Module


def _unit(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)).view_as(x)


class _Matrix:
    """A matrix ``A`` ``(m, n)`` as the linear map ``x -> A x`` on rows ``(b, n)``: plain matmuls, no autograd."""

    def __init__(self, A: torch.Tensor):
        if A.dim() != 2:
            raise ValueError(f"a matrix module must have 2 dimensions; got shape {tuple(A.shape)}")
        self.A = A.detach()
        self.input_shape = (int(A.shape[1]),)
        self.device, self.dtype = A.device, A.dtype

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A.T

    def gram(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x @ self.A.T
        return y, y @ self.A


def power_iteration(
    module: Module | torch.Tensor,
    input_shape: Sequence[int],
    n_iter: int = 100,
    v: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    rtol: float = 0.0,
    return_image: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Estimate the spectral norm of ``x -> module(x) - module(0)`` by power iteration on ``M^T M``.

    The module is applied as it is (its own stride, padding mode, dilation, groups); put batch norm in
    eval mode first. The iterate is normalised every step, so nothing overflows.

    Args:
        module: linear-plus-constant callable on ``(batch, *input_shape)``, or a matrix ``(m, n)`` (then
            ``input_shape`` is ``(n,)`` and the steps are two matmuls, without autograd).
        input_shape: one input without the batch dimension, e.g. ``(c_in, h, w)``.
        n_iter: steps (>= 1), at most.
        v: warm start of shape ``input_shape`` (the vector returned by the previous call).
        generator: a CPU generator for the random start when ``v`` is None.
        rtol: stop early once ``||M x||`` (x the unit iterate) changes by at most ``rtol`` relatively in one
            step; 0 runs all ``n_iter`` steps. Near-orthogonal layers then stop after a few steps.
        return_image: also return ``M v`` (computed anyway for ``sigma``), e.g. a left singular vector estimate.

    Returns:
        ``(sigma, v)``: a 0-d estimate ``||M v||`` (a lower bound up to rounding) and the unit vector to
        warm-start with; ``(sigma, v, M v)`` with ``return_image``.
    """
    check_count(n_iter, "n_iter")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol >= 0:
        raise ValueError(f"rtol must be a non-negative number; got {rtol!r}")
    M = _Matrix(module) if isinstance(module, torch.Tensor) else LinearPart(module, input_shape)
    if tuple(int(s) for s in input_shape) != M.input_shape:
        raise ValueError(f"input_shape of a matrix ({M.input_shape[0]} columns) must be {M.input_shape}; got {tuple(input_shape)}")
    if v is None:
        x = torch.randn(1, *M.input_shape, generator=generator, dtype=M.dtype).to(M.device)
    else:
        if tuple(v.shape) != M.input_shape:
            raise ValueError(f"v must have shape input_shape={M.input_shape}; got {tuple(v.shape)}")
        x = v.detach().to(M.device, M.dtype).unsqueeze(0)
    x = _unit(x)
    sigma = None
    for _ in range(n_iter):
        y, g = M.gram(x)
        previous, sigma = sigma, y.norm()
        if rtol and previous is not None and abs(float(sigma) - float(previous)) <= rtol * float(sigma):
            break  # y is M x for the current x
        x = _unit(g)
    else:
        y = M.apply(x)
        sigma = y.norm()
    if return_image:
        return sigma, x[0].detach(), y[0].detach()
    return sigma, x[0].detach()

