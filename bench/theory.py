"""Theory beside measurement: leading-order real FLOP counts of each method and the TT speedup.

Conventions (counts are estimates of the dominant terms, not of every instruction):

- a complex multiply-add is 8 real FLOPs; a real FFT of N points 2.5 N log2 N, a complex one 5 N log2 N;
- on the m-grid (``m = n / s``) a transfer matrix is ``c_out x c_in prod(s)``; ``a`` = its smaller side,
  ``b`` = the larger; the half-spectrum has ``prod(m[:-1]) * (m[-1] // 2 + 1)`` frequencies;
- Gram ``a x b`` times ``b x a``: ``8 a^2 b``; Hermitian eigenvalues only (tridiagonalisation):
  ``32/3 a^3``; with eigenvectors about ``36 a^3``; complex SVD, values only (bidiagonalisation):
  ``4 (4 b a^2 - 4/3 a^3)``;
- a conv application: ``2 c_out c_in prod(k) prod(n / s)``; its input gradient the same again.

The TT speedup of the seed is the ratio of the dominant per-frequency cost ``a * b * a``, full over core:
``(c/r)^3`` for square layers (seed 000, Sec. 4.1).
"""

from __future__ import annotations

import math
from typing import Sequence


def _prod(values: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in values))


def _grid(input_size: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(n) // int(s) for n, s in zip(input_size, stride))


def half_spectrum(m: Sequence[int]) -> int:
    """Number of frequencies of a real FFT over the grid ``m``."""
    return _prod(m[:-1]) * (int(m[-1]) // 2 + 1)


def _fft(channels: int, points: int, real: bool = True) -> float:
    if points <= 1:
        return 0.0
    return channels * (2.5 if real else 5.0) * points * math.log2(points)


def _sides(c_out: int, c_in: int, stride: Sequence[int]) -> tuple[int, int]:
    cols = c_in * _prod(stride)
    return min(c_out, cols), max(c_out, cols)


def exact_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int]) -> float:
    """``conv_singular_values``: half-spectrum real FFT, smaller Gram, Hermitian eigenvalues."""
    m = _grid(input_size, stride)
    a, b = _sides(c_out, c_in, stride)
    cols = c_in * _prod(stride)
    return _fft(c_out * cols, _prod(m)) + half_spectrum(m) * (8 * a * a * b + 32 / 3 * a**3)


def svd_baseline_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int]) -> float:
    """NumPy / plain PyTorch baselines: full complex FFT, values-only SVD at every frequency."""
    m = _grid(input_size, stride)
    a, b = _sides(c_out, c_in, stride)
    cols = c_in * _prod(stride)
    return _fft(c_out * cols, _prod(m), real=False) + _prod(m) * 4 * (4 * b * a * a - 4 / 3 * a**3)


def clip_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int], n_iter: int = 1) -> float:
    """``clip_conv_singular_values``: per pass FFT and inverse FFT, Gram, eigh with vectors, projection, product."""
    m = _grid(input_size, stride)
    a, b = _sides(c_out, c_in, stride)
    cols = c_in * _prod(stride)
    per_pass = 2 * _fft(c_out * cols, _prod(m)) + half_spectrum(m) * (16 * a * a * b + 44 * a**3)
    return n_iter * per_pass


def gram_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int], n_iter: int = 6) -> float:
    """``gram_iteration_bound``: FFT, then ``n_iter`` Gram products (the first ``a x b``, the rest ``a x a``)."""
    m = _grid(input_size, stride)
    a, b = _sides(c_out, c_in, stride)
    cols = c_in * _prod(stride)
    steps = (8 * a * a * b + max(n_iter - 1, 0) * 8 * a**3) if n_iter else 0
    return _fft(c_out * cols, _prod(m)) + half_spectrum(m) * steps


def conv_apply_flops(c_out: int, c_in: int, kernel: Sequence[int], input_size: Sequence[int], stride: Sequence[int]) -> float:
    """One forward application of the convolution to one input."""
    return 2.0 * c_out * c_in * _prod(kernel) * _prod(_grid(input_size, stride))


def power_flops(c_out: int, c_in: int, kernel: Sequence[int], input_size: Sequence[int], stride: Sequence[int], n_iter: int, k: int = 1) -> float:
    """Power iteration / PowerQR with ``k`` columns: per step a forward and an input-gradient pass per column."""
    apply = conv_apply_flops(c_out, c_in, kernel, input_size, stride)
    n_in = c_in * _prod(input_size)
    qr = 4.0 * n_in * k * k if k > 1 else 0.0
    return k * (2 * n_iter + 1) * apply + n_iter * qr


def aol_flops(c_out: int, c_in: int, kernel: Sequence[int]) -> float:
    """AOL rescaling: the kernel's full self-correlation ``c_in x c_in x (2k-1)^d`` and its absolute row sums."""
    full = _prod([2 * kj - 1 for kj in kernel])
    return 2.0 * c_in * c_in * c_out * _prod(kernel) * full


def tt_overhead_flops(c_out: int, c_in: int, r1: int, r2: int, kernel: Sequence[int]) -> float:
    """Orthogonalising a TT layer (Lemma 3.2): two thin QRs and folding ``R3 C R1^T`` into the core."""
    qr = 4.0 * (c_in * r1 * r1 + c_out * r2 * r2)
    fold = 2.0 * _prod(kernel) * (r2 * r2 * r1 + r2 * r1 * r1)
    return qr + fold


def tt_theory_speedup(c_out: int, c_in: int, r1: int, r2: int, stride: Sequence[int]) -> float:
    """``(a b a)_full / (a b a)_core``: ``(c/r)^3`` for ``c_in = c_out = c`` and ``r1 = r2 = r``."""
    a, b = _sides(c_out, c_in, stride)
    ar, br = _sides(r2, r1, stride)
    return (a * a * b) / (ar * ar * br)


def method_flops(
    method: str,
    c_out: int,
    c_in: int,
    kernel: Sequence[int],
    input_size: Sequence[int],
    stride: Sequence[int],
    iters: int | None = None,
    k: int | None = None,
    ranks: tuple[int, int] | None = None,
) -> float | None:
    """FLOPs of one call of a bench ``method`` on one layer; ``ranks=(r1, r2)`` for a TT layer (core + frames).

    None for methods without a closed form here (division and FastClip mix power steps with rescaling;
    their cost is the power-iteration count plus a weight update, reported through ``power``).
    """
    iters = iters or 1
    if ranks is not None:
        r1, r2 = ranks
        inner = method_flops(method, r2, r1, kernel, input_size, stride, iters, k)
        if inner is None:
            return None
        if method in ("exact", "clip", "gram", "division", "fastclip"):
            inner += tt_overhead_flops(c_out, c_in, r1, r2, kernel)
        return inner
    if method == "exact":
        return exact_flops(c_out, c_in, input_size, stride)
    if method in ("exact-numpy", "exact-torch"):
        return svd_baseline_flops(c_out, c_in, input_size, stride)
    if method == "clip":
        return clip_flops(c_out, c_in, input_size, stride, iters)
    if method == "gram":
        return gram_flops(c_out, c_in, input_size, stride, iters)
    if method == "power":
        return power_flops(c_out, c_in, kernel, input_size, stride, iters)
    if method == "powerqr":
        return power_flops(c_out, c_in, kernel, input_size, stride, iters, k or 1)
    if method == "division":
        return power_flops(c_out, c_in, kernel, input_size, stride, iters) + 2.0 * c_out * c_in * _prod(kernel)
    if method == "aol":
        return aol_flops(c_out, c_in, kernel)
    return None
