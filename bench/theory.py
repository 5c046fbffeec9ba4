"""Theory beside measurement: FLOP counts of each bench method and the TT speedup.

The per-layer counts live with the methods (``svconv.methods.flops``, named by each registry entry's
``flops``; conventions there). The TT speedup of the seed is the ratio of the dominant per-frequency cost
``a * b * a``, full over core: ``(c/r)^3`` for square layers (Senderovich et al. 2022, Sec. 4.1).
"""

from __future__ import annotations

from typing import Sequence

import bench.baselines  # noqa: F401 - registers the exact-numpy / exact-torch estimators
from svconv.methods.flops import (  # noqa: F401 - the formulas, re-exported for bench users
    matrix_sides,
    aol_flops,
    clip_flops,
    conv_apply_flops,
    exact_flops,
    gram_flops,
    half_spectrum,
    power_flops,
    svd_baseline_flops,
    tt_overhead_flops,
)
from svconv.methods.registry import entry


def tt_theory_speedup(c_out: int, c_in: int, r1: int, r2: int, stride: Sequence[int]) -> float:
    """``(a b a)_full / (a b a)_core``: ``(c/r)^3`` for ``c_in = c_out = c`` and ``r1 = r2 = r``."""
    a, b = matrix_sides(c_out, c_in, stride)
    ar, br = matrix_sides(r2, r1, stride)
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

    None for methods without a closed form (FastClip mixes power steps with gradient steps).
    """
    cls = entry(method)
    iters = iters or 1
    if ranks is not None:
        r1, r2 = ranks
        inner = method_flops(method, r2, r1, kernel, input_size, stride, iters, k)
        if inner is None:
            return None
        if cls.orthogonalises:
            inner += tt_overhead_flops(c_out, c_in, r1, r2, kernel)
        return inner
    return cls.flops(c_out, c_in, kernel, input_size, stride, iters, k)
