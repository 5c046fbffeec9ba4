"""Leading-order real FLOP counts of the spectral routines and control steps, per layer.

Conventions (counts are estimates of the dominant terms, not of every instruction):

- a complex multiply-add is 8 real FLOPs; a real FFT of N points 2.5 N log2 N, a complex one 5 N log2 N;
- on the m-grid (``m = n / s``) a transfer matrix is ``c_out x c_in prod(s)``; ``a`` = its smaller side,
  ``b`` = the larger; the half-spectrum has ``prod(m[:-1]) * (m[-1] // 2 + 1)`` frequencies;
- Gram ``a x b`` times ``b x a``: ``8 a^2 b``; Hermitian eigenvalues only (tridiagonalisation):
  ``32/3 a^3``; with eigenvectors about ``36 a^3``; complex SVD, values only (bidiagonalisation):
  ``4 (4 b a^2 - 4/3 a^3)``;
- a conv application: ``2 c_out c_in prod(k) prod(n / s)``; its input gradient the same again.

Each registered method (``svconv.methods.registry``) names its count through its ``flops`` function;
``bench.theory`` adds the TT speedup and sums over models.
"""

from __future__ import annotations

import math
from typing import Sequence


def prod(values: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in values))


def _grid(input_size: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(n) // int(s) for n, s in zip(input_size, stride))


def half_spectrum(m: Sequence[int]) -> int:
    """Number of frequencies of a real FFT over the grid ``m``."""
    return prod(m[:-1]) * (int(m[-1]) // 2 + 1)


def _fft(channels: int, points: int, real: bool = True) -> float:
    if points <= 1:
        return 0.0
    return channels * (2.5 if real else 5.0) * points * math.log2(points)


def matrix_sides(c_out: int, c_in: int, stride: Sequence[int]) -> tuple[int, int]:
    cols = c_in * prod(stride)
    return min(c_out, cols), max(c_out, cols)


def exact_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int]) -> float:
    """``conv_singular_values``: half-spectrum real FFT, smaller Gram, Hermitian eigenvalues."""
    m = _grid(input_size, stride)
    a, b = matrix_sides(c_out, c_in, stride)
    cols = c_in * prod(stride)
    return _fft(c_out * cols, prod(m)) + half_spectrum(m) * (8 * a * a * b + 32 / 3 * a**3)


def svd_baseline_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int]) -> float:
    """NumPy / plain PyTorch baselines: full complex FFT, values-only SVD at every frequency."""
    m = _grid(input_size, stride)
    a, b = matrix_sides(c_out, c_in, stride)
    cols = c_in * prod(stride)
    return _fft(c_out * cols, prod(m), real=False) + prod(m) * 4 * (4 * b * a * a - 4 / 3 * a**3)


def clip_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int], n_iter: int = 1) -> float:
    """``clip_conv_singular_values``: per pass FFT and inverse FFT, Gram, eigh with vectors, projection, product."""
    m = _grid(input_size, stride)
    a, b = matrix_sides(c_out, c_in, stride)
    cols = c_in * prod(stride)
    per_pass = 2 * _fft(c_out * cols, prod(m)) + half_spectrum(m) * (16 * a * a * b + 44 * a**3)
    return n_iter * per_pass


def gram_flops(c_out: int, c_in: int, input_size: Sequence[int], stride: Sequence[int], n_iter: int = 6) -> float:
    """``gram_iteration_bound``: FFT, then ``n_iter`` Gram products (the first ``a x b``, the rest ``a x a``)."""
    m = _grid(input_size, stride)
    a, b = matrix_sides(c_out, c_in, stride)
    cols = c_in * prod(stride)
    steps = (8 * a * a * b + max(n_iter - 1, 0) * 8 * a**3) if n_iter else 0
    return _fft(c_out * cols, prod(m)) + half_spectrum(m) * steps


def conv_apply_flops(c_out: int, c_in: int, kernel: Sequence[int], input_size: Sequence[int], stride: Sequence[int]) -> float:
    """One forward application of the convolution to one input."""
    return 2.0 * c_out * c_in * prod(kernel) * prod(_grid(input_size, stride))


def power_flops(c_out: int, c_in: int, kernel: Sequence[int], input_size: Sequence[int], stride: Sequence[int], n_iter: int, k: int = 1) -> float:
    """Power iteration / PowerQR with ``k`` columns: per step a forward and an input-gradient pass per column."""
    apply = conv_apply_flops(c_out, c_in, kernel, input_size, stride)
    n_in = c_in * prod(input_size)
    qr = 4.0 * n_in * k * k if k > 1 else 0.0
    return k * (2 * n_iter + 1) * apply + n_iter * qr


def aol_flops(c_out: int, c_in: int, kernel: Sequence[int]) -> float:
    """AOL rescaling: the kernel's full self-correlation ``c_in x c_in x (2k-1)^d`` and its absolute row sums."""
    full = prod([2 * kj - 1 for kj in kernel])
    return 2.0 * c_in * c_in * c_out * prod(kernel) * full


def tt_overhead_flops(c_out: int, c_in: int, r1: int, r2: int, kernel: Sequence[int]) -> float:
    """Orthogonalising a TT layer (Lemma 3.2): two thin QRs and folding ``R3 C R1^T`` into the core."""
    qr = 4.0 * (c_in * r1 * r1 + c_out * r2 * r2)
    fold = 2.0 * prod(kernel) * (r2 * r2 * r1 + r2 * r1 * r1)
    return qr + fold


def division_flops(c_out: int, c_in: int, kernel: Sequence[int], input_size: Sequence[int], stride: Sequence[int], n_iter: int) -> float:
    """Division (Gouk et al. 2021): ``n_iter`` power steps on the layer, then one rescale of the kernel."""
    return power_flops(c_out, c_in, kernel, input_size, stride, n_iter) + 2.0 * c_out * c_in * prod(kernel)
