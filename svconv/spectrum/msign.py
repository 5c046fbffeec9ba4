"""Matmul-only clipping of batched (complex) matrices: the polar factor by Newton-Schulz-type iterations and
the spectral hard cap ``U min(Sigma, c) V^H`` without an SVD (docs/design.md, "Clipping without an
eigensolver").

``msign(X) = U V^H`` for ``X = U Sigma V^H`` (for Hermitian ``X`` the matrix sign). ``X`` is divided by
``||X^H X||_F^(1/2) >= sigma_max`` (at most ``min(a, b)^(1/4)`` times too large), then each step applies an odd
quintic ``p`` to every singular value: ``fast_steps`` of ``p(x) = 3.4445 x - 4.7750 x^3 + 2.0315 x^5`` (the Muon
coefficients of Jordan et al.: small values grow 3.44x per step, the rest land in ``[0.68, 1.21]``), then
``fine_steps`` of ``p(x) = (15 x - 10 x^3 + 3 x^5) / 8``, which converges to 1 from ``(0, 1.527)`` with cubic
order. With 8 + 4 steps (exact arithmetic) every normalised singular value ``x >= 1.1e-5`` ends within
``1e-3`` of 1 and every ``x >= 1.8e-5`` within ``1e-7``; with 10 + 4, ``x >= 1.5e-6`` within ``1e-7``. Zero stays
zero; smaller values end in ``(0, 1)``.

The hard cap. The identity ``U min(Sigma, c) V^H = (X + c O - msign(c O - X) O^H (c O - X)) / 2`` with
``O = msign(X)`` (Newhouse et al. 2025) needs ``O`` exact on EVERY singular value: a tiny ``sigma`` whose
polar value ``p`` has not reached 1 comes out as ``sigma + (1 - p)(c p - sigma) / 2``, up to ``c / 8`` (measured
0.04 c on random matrices with singular values down to 1e-6 sigma_max). :func:`hard_cap` uses instead the
projector onto the singular vectors above ``c``, from the sign of the shifted Gram matrix:
``Pi = (I + sign(X^H X - c^2 I)) / 2``, ``X' = X - (X - c O) Pi``. Per singular value the result is
``sigma + pi (c p - sigma)``: where ``pi = 0`` (``sigma`` clearly below ``c``, however small) it is exactly
``sigma``; above ``c``, ``p = 1`` (large values converge first) and the result lies in ``[c, sigma]``; only the
values with ``|sigma^2 - c^2| < 1.5e-6 ||H^2||_F^(1/2)`` (``H`` the shifted Gram) can be off, by at most
``|sigma - c|``, and never above ``max(sigma, c)``. ``tests/test_clip_target.py`` holds the capped matrices to
the eigensolver's within ``1e-6 sigma_max`` (float64) and ``2e-4 sigma_max`` (float32).
"""

from __future__ import annotations

import math

import torch

from svconv.spectrum.gram import gram_bound_matrices

FAST = (3.4445, -4.7750, 2.0315)
FINE = (15 / 8, -10 / 8, 3 / 8)


def msign(X: torch.Tensor, fast_steps: int = 8, fine_steps: int = 4) -> torch.Tensor:
    """Polar factor ``U V^H`` of every matrix of a batch ``(..., a, b)`` (real or complex), matmuls only.

    Works on the smaller Gram side: 3 batched products per step. Accuracy as in the module docstring.
    """
    if X.shape[-2] < X.shape[-1]:
        return msign(X.mH, fast_steps, fine_steps).mH
    real = X.real.dtype
    A = X.mH @ X
    scale = torch.linalg.matrix_norm(A).sqrt().clamp_min(torch.finfo(real).tiny)[..., None, None]
    X, A = X / scale, A / scale**2
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    for step in range(fast_steps + fine_steps):
        a, b, c = FAST if step < fast_steps else FINE
        if step:
            A = X.mH @ X
        X = X @ (a * eye + b * A + c * (A @ A))
    return X


class HardCap:
    """``U min(Sigma, t) V^H`` for a batch ``(F, a, b)`` and any level ``t``, matmuls only (module docstring).

    The Gram matrix of the smaller side and the polar factor are computed once and serve every level.
    """

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.right = X.shape[-2] >= X.shape[-1]  # Gram and projector on the input side
        self.gram = X.mH @ X if self.right else X @ X.mH
        self._O: torch.Tensor | None = None

    def clip(self, level: float) -> torch.Tensor:
        if self._O is None:
            self._O = msign(self.X)
        eye = torch.eye(self.gram.shape[-1], dtype=self.gram.dtype, device=self.gram.device)
        S = msign(self.gram - level**2 * eye, fast_steps=10)  # Hermitian: the matrix sign
        Pi = 0.5 * (eye + S)
        excess = self.X - level * self._O
        return self.X - (excess @ Pi if self.right else Pi @ excess)


def hard_cap(X: torch.Tensor, level: float) -> torch.Tensor:
    """``U min(Sigma, level) V^H`` for a batch ``(..., a, b)`` without an eigensolver; see :class:`HardCap`."""
    return HardCap(X).clip(level)


def gram_steps(size: int, rel: float) -> int:
    """Gram-iteration steps T whose bound exceeds the largest singular value by at most the factor ``1 + rel``
    whatever the spectrum: ``size^(2^-(T+1)) <= 1 + rel`` (``size`` singular values, all equal in the worst case)."""
    need = math.log(max(size, 2)) / math.log1p(rel)
    return max(1, math.ceil(math.log2(need)) - 1)


class MatmulSolver:
    """The matmul path of ``clip_to_target``: :class:`HardCap` for clipping, the Gram-iteration bound for checking.

    Norms are certified upper bounds, at most the factor ``1 + GRAM_REL`` above the truth (:func:`gram_steps`).
    """

    GRAM_REL = 1e-3
    decompose = HardCap

    @classmethod
    def top(cls, dec: HardCap) -> float:
        return float(cls.top_each(dec).max())

    @classmethod
    def norm(cls, P: torch.Tensor) -> float:
        return float(cls.per_matrix(P).max())

    @classmethod
    def per_matrix(cls, P: torch.Tensor) -> torch.Tensor:
        """``(F,)``: each matrix's certified Gram-iteration bound."""
        return gram_bound_matrices(P, gram_steps(min(P.shape[-2:]), cls.GRAM_REL))

    @classmethod
    def top_each(cls, dec: HardCap) -> torch.Tensor:
        return cls.per_matrix(dec.X)
